"""Opening a lab is a site policy: by default a signed-in user requests one and a site
administrator approves it; until then it takes no machines (no printer addresses) and no
members, and only its managers see it. FABHUB_OPEN_LAB_CREATION restores open creation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.exceptions import PermissionDenied
from hub.models import Notification
from machines import services
from machines.models import Lab
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def request_lab(user, slug="garage"):
    return client_for(user).post(
        reverse("api-lab-list"),
        {"name": "Garage lab", "slug": slug, "timezone": "Europe/Paris"},
        format="json",
    )


def test_a_requested_lab_waits_for_approval_and_takes_no_machine(alice, bob):
    response = request_lab(alice)
    assert response.status_code == 201, response.content
    lab = Lab.objects.get(slug="garage")
    assert lab.approved_at is None
    machine = client_for(alice).post(
        reverse("api-machine-list", args=["garage"]),
        {"name": "Printer", "slug": "printer", "kind": "fdm_printer", "connection_url": "http://10.0.0.7/"},
        format="json",
    )
    assert machine.status_code == 403
    assert "waits for the hub's administrators" in machine.json()["detail"]
    with pytest.raises(PermissionDenied):
        services.membership_join(lab=lab, user=bob)
    # Only its managers see it listed.
    assert "garage" not in [
        row["slug"] for row in client_for(bob).get(reverse("api-lab-list")).json()["results"]
    ]
    assert "garage" in [
        row["slug"] for row in client_for(alice).get(reverse("api-lab-list")).json()["results"]
    ]


def test_a_site_administrator_approves_it_and_its_managers_are_told(alice):
    request_lab(alice)
    lab = Lab.objects.get(slug="garage")
    with pytest.raises(PermissionDenied):
        services.lab_approve(lab=lab, actor=alice)
    admin = UserFactory(username="root", is_staff=True)
    services.lab_approve(lab=lab, actor=admin)
    lab.refresh_from_db()
    assert lab.approved_at is not None
    assert Notification.objects.filter(recipient=alice, subject__contains="approved").exists()
    machine = services.machine_create(
        lab=lab, actor=alice, name="Printer", slug="printer", kind="fdm_printer"
    )
    assert machine.lab_id == lab.pk


def test_the_admin_site_approves_selected_labs(alice, client):
    request_lab(alice)
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    lab = Lab.objects.get(slug="garage")
    response = client.post(
        reverse("admin:machines_lab_changelist"), {"action": "approve", "_selected_action": [lab.pk]}
    )
    assert response.status_code == 302
    lab.refresh_from_db()
    assert lab.approved_at is not None


def test_open_creation_is_a_setting(alice, settings):
    settings.FABHUB_OPEN_LAB_CREATION = True
    request_lab(alice)
    assert Lab.objects.get(slug="garage").approved_at is not None
