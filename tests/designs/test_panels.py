"""designs.panels: another app shows a panel on a design's page without designs importing it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import format_html

from designs import panels
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_panels(monkeypatch):
    """Start from no registered panels, and leave the real ones as they were."""
    monkeypatch.setattr(panels, "_panels", [])


def made_by(design) -> str:
    return format_html('<section class="panel">Made from {}</section>', design.slug)


def nothing(design) -> str:
    return ""


def test_a_registered_panel_is_shown_on_the_design_page(client, alice, no_panels):
    design = DesignFactory(owner=alice, slug="gripper")
    commit_files(design, {"README.md": "# Gripper\n"})
    panels.register_design_panel(made_by)
    page = client.get(reverse("design-detail", args=["alice", "gripper"])).content.decode()
    assert '<section class="panel">Made from gripper</section>' in page


def test_an_empty_design_shows_its_panels_too(client, alice, no_panels):
    DesignFactory(owner=alice, slug="empty")
    panels.register_design_panel(made_by)
    page = client.get(reverse("design-detail", args=["alice", "empty"])).content.decode()
    assert "Made from empty" in page


def test_a_panel_with_nothing_to_show_adds_nothing(alice, no_panels):
    design = DesignFactory(owner=alice, slug="gripper")
    panels.register_design_panel(nothing)
    panels.register_design_panel(made_by)
    assert panels.design_panels(design) == ['<section class="panel">Made from gripper</section>']


def test_registering_a_panel_twice_shows_it_once(alice, no_panels):
    design = DesignFactory(owner=alice, slug="gripper")
    panels.register_design_panel(made_by)
    panels.register_design_panel(made_by)
    assert len(panels.design_panels(design)) == 1
