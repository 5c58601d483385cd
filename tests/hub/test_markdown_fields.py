"""Markdown fields are bounded, rendered once when written (by the linear-time renderer),
stored with the renderer's version, and never rendered again when read."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from designs import services as design_services
from designs.services import proposals
from hub import markdown
from hub.exceptions import ValidationError
from hub.markdown import MAX_MARKDOWN_CHARS, RENDERER_VERSION
from machines import services as machine_services
from machines.models import Lab
from tests.conftest import client_for
from tests.factories import DesignFactory, commit_files
from tests.machines.factories import make_lab

pytestmark = pytest.mark.django_db


def test_lab_description_stored_and_served_without_rendering(alice, client, monkeypatch):
    lab = make_lab(alice)
    machine_services.lab_update(lab=lab, actor=alice, description="**Open** on *Fridays*")
    lab.refresh_from_db()
    assert lab.description_html == "<p><strong>Open</strong> on <em>Fridays</em></p>"
    assert lab.description_html_version == RENDERER_VERSION

    monkeypatch.setattr(markdown, "render_markdown", lambda *a, **k: pytest.fail("rendered on read"))
    page = client.get(reverse("lab-detail", args=[lab.slug]))
    assert "<strong>Open</strong>" in page.content.decode()
    api = client.get(reverse("api-lab-detail", args=[lab.slug]))
    assert api.json()["description_html"] == lab.description_html


def test_an_over_long_markdown_field_is_a_clear_400(alice):
    lab = make_lab(alice)
    response = client_for(alice).patch(
        reverse("api-lab-detail", args=[lab.slug]),
        {"description": "x" * (MAX_MARKDOWN_CHARS + 1)},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "description" in str(response.json()) and "65536" in str(response.json())
    lab.refresh_from_db()
    assert lab.description == ""


def test_html_made_by_an_older_renderer_is_rendered_again_by_the_command(alice, client):
    lab = make_lab(alice)
    machine_services.lab_update(lab=lab, actor=alice, description="# Welcome")
    Lab.objects.filter(pk=lab.pk).update(description_html="<p>stale</p>", description_html_version="old-1")
    # Until then, a read renders it for that answer rather than show stale HTML.
    assert "<h1>Welcome</h1>" in client.get(reverse("lab-detail", args=[lab.slug])).content.decode()
    call_command("rerender_markdown")
    lab.refresh_from_db()
    assert lab.description_html == "<h1>Welcome</h1>" and lab.description_html_version == RENDERER_VERSION


def test_proposal_text_is_stored_and_its_links_follow_the_head(alice, bob, client, monkeypatch):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# B\n", "docs/fit.png": b"\x89PNG"})
    fork = design_services.design_fork(design=design, user=bob)
    commit_files(fork, {"README.md": "# Better\n"}, author=bob)
    proposal = proposals.proposal_create(
        target=design,
        user=bob,
        source=fork,
        source_branch="main",
        title="T",
        description="![fit](docs/fit.png)",
    )
    comment = proposals.proposal_comment(proposal=proposal, user=alice, body="See [the fit](docs/fit.png).")
    assert proposal.description_html_version == comment.body_html_version == RENDERER_VERSION

    from designs import selectors

    monkeypatch.setattr(selectors, "render_markdown", lambda *a, **k: pytest.fail("rendered on read"))
    page = client.get(reverse("design-proposal", args=["alice", "bracket", proposal.number])).content.decode()
    proposal.refresh_from_db()
    assert f"/alice/bracket/raw/docs/fit.png?ref={proposal.head_sha}" in page
    assert f"/alice/bracket/blob/docs/fit.png?ref={proposal.head_sha}" in page


def test_the_service_bounds_markdown_whatever_the_caller(alice):
    lab = make_lab(alice)
    with pytest.raises(ValidationError, match="limit is 65,536"):
        machine_services.lab_update(lab=lab, actor=alice, description="x" * (MAX_MARKDOWN_CHARS + 1))
