"""People join labs (open, or on a manager's approval); managers manage only their labs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.exceptions import Conflict
from machines import services
from machines.selectors import lab_role
from tests.conftest import client_for
from tests.machines.factories import make_lab

pytestmark = pytest.mark.django_db


def test_anyone_logged_in_opens_a_lab_and_manages_it(alice, frozen):
    response = client_for(alice).post(
        reverse("api-lab-list"),
        {
            "name": "Fab Lab Paris",
            "slug": "fab-paris",
            "timezone": "Europe/Paris",
            "description": "**Hello**",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["description_html"] == "<p><strong>Hello</strong></p>"
    assert body["max_booking_minutes"] == 240
    from machines.models import Lab

    assert lab_role(Lab.objects.get(slug="fab-paris"), alice) == "manager"


def test_joining_an_open_lab_is_immediate(lab, bob):
    response = client_for(bob).post(reverse("api-lab-members", args=["fablab"]), format="json")
    assert response.status_code == 201 and response.json()["status"] == "active"


def test_joining_a_lab_on_request_waits_for_a_manager(alice, bob, frozen):
    lab = make_lab(alice, slug="closed-club", join_policy="request")
    assert (
        client_for(bob).post(reverse("api-lab-members", args=["closed-club"]), format="json").json()["status"]
        == "pending"
    )
    assert lab_role(lab, bob) == "pending"
    response = client_for(alice).patch(
        reverse("api-lab-member", args=["closed-club", "bob"]), {"approve": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "active"


def test_a_lab_keeps_at_least_one_manager(lab, alice, member):
    # A state the request cannot change, not a malformed request: 409 through the API.
    with pytest.raises(Conflict, match="at least one manager"):
        services.membership_remove(lab=lab, actor=alice, user=alice)
    with pytest.raises(Conflict, match="at least one manager"):
        services.membership_set_role(lab=lab, actor=alice, user=alice, role="member")
    services.membership_set_role(lab=lab, actor=alice, user=member, role="manager")
    services.membership_remove(lab=lab, actor=alice, user=alice)
    assert lab_role(lab, alice) is None


def test_a_member_sees_the_members_but_not_the_requests(lab, alice, member, frozen):
    from tests.factories import UserFactory

    carol = UserFactory(username="carol")
    services.lab_update(lab=lab, actor=alice, join_policy="request")
    services.membership_join(lab=lab, user=carol)
    seen_by_member = client_for(member).get(reverse("api-lab-members", args=["fablab"])).json()
    seen_by_manager = client_for(alice).get(reverse("api-lab-members", args=["fablab"])).json()
    assert {m["username"] for m in seen_by_member} == {"alice", "bob"}
    assert {m["username"] for m in seen_by_manager} == {"alice", "bob", "carol"}


def test_a_read_only_token_cannot_book(lab, member, printer):
    from tests.machines.factories import at

    response = client_for(member, scope="read").post(
        reverse("api-booking-list"),
        {
            "machine": printer.pk,
            "start": at(lab, "2026-03-25", "10:00").isoformat(),
            "end": at(lab, "2026-03-25", "11:00").isoformat(),
        },
        format="json",
    )
    assert response.status_code == 403
