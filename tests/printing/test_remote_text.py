"""What a printer or a mirror answered is shown only to those who manage it: lab managers
for printers, owners for mirrors. Its words may carry internal addresses or the body of
whatever answered; everyone else gets a plain summary."""

from __future__ import annotations

import pytest
from django.urls import reverse

from machines.models import Printer
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.machines.factories import add_member, make_lab
from tests.printing.factories import make_printer

pytestmark = pytest.mark.django_db

LEAK = "OctoPrint at http://10.0.0.7:5000 answered GET /api/job with HTTP 404: <html>internal admin</html>"


@pytest.fixture
def lab_with_failing_printer(alice, bob):
    lab = make_lab(alice)
    add_member(lab, bob)
    printer = make_printer(lab)
    Printer.objects.filter(pk=printer.pk).update(state="error", message=LEAK)
    return lab


def printers(client, lab):
    return client.get(reverse("api-lab-printers", args=[lab.slug])).json()


def test_the_printer_api_shows_the_error_text_to_managers_only(lab_with_failing_printer, alice, bob, api):
    lab = lab_with_failing_printer
    [for_manager] = printers(client_for(alice), lab)
    assert for_manager["message"] == LEAK
    for viewer in (client_for(bob), api, client_for(UserFactory(username="passer-by"))):
        [shown] = printers(viewer, lab)
        assert "10.0.0.7" not in str(shown) and "internal admin" not in str(shown)
        assert shown["message"] == "The printer needs a manager's attention."
    detail = api.get(reverse("api-machine-printer", args=[lab.slug, "mk4"])).json()
    assert "10.0.0.7" not in str(detail)


def test_the_queue_page_shows_the_error_text_to_managers_only(lab_with_failing_printer, alice, bob, client):
    url = reverse("print-queue", args=[lab_with_failing_printer.slug])
    client.force_login(bob)
    assert "10.0.0.7" not in client.get(url).content.decode()
    client.force_login(alice)
    assert "10.0.0.7" in client.get(url).content.decode()


def test_a_mirror_s_error_text_is_for_its_owner_only(alice, bob, api):
    from designs.models import Design, PullMirror
    from tests.factories import DesignFactory, commit_files

    design = DesignFactory(owner=alice, slug="mirrored")
    commit_files(design, {"README.md": "# M\n"})
    PullMirror.objects.create(
        design=design,
        url="https://git.example.org/x.git",
        interval=3600,
        last_error="fatal: unable to access http://10.1.1.1/",
    )
    Design.objects.filter(pk=design.pk).update(visibility="public")
    url = reverse("api-design-mirror", args=["alice", "mirrored"])
    assert "10.1.1.1" in str(client_for(alice).get(url).json())
    for viewer in (client_for(bob), api):
        answer = viewer.get(url).json()
        assert "10.1.1.1" not in str(answer) and answer["last_error"] == "The last refresh failed."
    page = api.get(reverse("design-detail", args=["alice", "mirrored"]))
    assert "10.1.1.1" not in page.content.decode()
