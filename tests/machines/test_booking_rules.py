"""The lab's booking rules (per machine overridable) decide what a member may book."""

from __future__ import annotations

from datetime import date

import pytest
from django.core import mail
from django.urls import reverse

from hub.exceptions import Conflict, ValidationError
from hub.models import Notification
from machines import services
from machines.models import Booking
from machines.notifications import notifications_about
from tests.conftest import client_for
from tests.machines.factories import at, book

pytestmark = pytest.mark.django_db

WEDNESDAY = date(2026, 3, 25)


def test_a_member_books_a_free_slot_inside_opening_hours(lab, member, printer):
    response = client_for(member).post(
        reverse("api-booking-list"),
        {
            "machine": printer.pk,
            "lab": "fablab",
            "start": at(lab, WEDNESDAY, "10:00").isoformat(),
            "end": at(lab, WEDNESDAY, "12:00").isoformat(),
            "note": "Drone frame",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "approved" and body["member"] == "bob" and body["lab"] == "fablab"
    assert body["note"] == "Drone frame"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("10:00", "10:10", "at least 15 minutes"),
        ("09:00", "13:30", "at most 240 minutes"),
        ("20:00", "22:00", "outside Fablab's opening hours"),
    ],
)
def test_duration_and_opening_hours_rules_are_enforced(lab, member, printer, start, end, message):
    with pytest.raises(ValidationError, match=message):
        book(printer, member, WEDNESDAY, start, end)


def test_notice_and_horizon_are_enforced_and_a_machine_may_override_them(lab, alice, member, printer):
    services.lab_update(lab=lab, actor=alice, min_notice_minutes=24 * 60, max_horizon_days=14)
    with pytest.raises(ValidationError, match="at least 1440 minutes ahead"):
        book(printer, member, "2026-03-23", "15:00", "16:00")
    with pytest.raises(ValidationError, match="at most 14 days ahead"):
        book(printer, member, "2026-04-15", "10:00", "11:00")
    services.machine_update(machine=printer, actor=alice, min_notice_minutes=0, max_horizon_days=60)
    printer.refresh_from_db()
    assert book(printer, member, "2026-03-23", "15:00", "16:00").status == "approved"
    assert book(printer, member, "2026-04-15", "10:00", "11:00").status == "approved"


def test_the_past_cannot_be_booked(lab, member, printer):
    with pytest.raises(ValidationError, match="passed"):
        book(printer, member, "2026-03-22", "10:00", "11:00")


def test_a_machine_quota_counts_that_machine_only(lab, alice, member, printer, laser):
    services.machine_update(machine=printer, actor=alice, weekly_quota_minutes=60)
    printer.refresh_from_db()
    book(printer, member, WEDNESDAY, "10:00", "11:00")
    with pytest.raises(ValidationError, match="weekly quota of 1 h at Prusa MK4"):
        book(printer, member, WEDNESDAY, "14:00", "14:30")
    # Next week is a new week.
    assert book(printer, member, "2026-03-30", "10:00", "11:00").status == "approved"


def test_bookings_wait_for_approval_when_the_lab_asks_for_it(lab, alice, member, printer):
    services.lab_update(lab=lab, actor=alice, requires_approval=True)
    booking = book(printer, member, WEDNESDAY, "10:00", "11:00")
    assert booking.status == Booking.Status.PENDING
    assert notifications_about(booking=booking).filter(recipient=alice).exists()
    # A pending booking holds its slot.
    with pytest.raises(Conflict):
        book(printer, alice, WEDNESDAY, "10:30", "11:30")
    response = client_for(alice).post(reverse("api-booking-approve", args=[booking.pk]), format="json")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert Notification.objects.filter(recipient=member, subject__startswith="Confirmed").exists()
    again = client_for(alice).post(reverse("api-booking-approve", args=[booking.pk]), format="json")
    assert again.status_code == 409


def test_a_refusal_needs_a_reason_and_frees_the_slot(
    lab, alice, member, printer, django_capture_on_commit_callbacks
):
    services.lab_update(lab=lab, actor=alice, requires_approval=True)
    booking = book(printer, member, WEDNESDAY, "10:00", "11:00")
    alice_api = client_for(alice)
    no_reason = alice_api.post(reverse("api-booking-refuse", args=[booking.pk]), {}, format="json")
    assert no_reason.status_code == 400 and "Say why" in no_reason.json()["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        refused = alice_api.post(
            reverse("api-booking-refuse", args=[booking.pk]), {"reason": "Training day"}, format="json"
        )
    assert refused.json()["status"] == "refused" and refused.json()["reason"] == "Training day"
    assert any("Refused" in m.subject for m in mail.outbox)
    assert book(printer, alice, WEDNESDAY, "10:00", "11:00").status == "approved"


def test_a_member_cancels_before_the_deadline_but_not_after(lab, member, printer):
    later = book(printer, member, WEDNESDAY, "10:00", "11:00")
    soon = book(printer, member, "2026-03-23", "09:30", "10:00")  # starts in 30 minutes; deadline is 60
    response = client_for(member).post(reverse("api-booking-cancel", args=[later.pk]), {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    late = client_for(member).post(reverse("api-booking-cancel", args=[soon.pk]), {}, format="json")
    assert late.status_code == 400 and "ask a manager" in late.json()["detail"]


def test_a_manager_cancels_anything_with_a_reason(lab, alice, member, printer):
    soon = book(printer, member, "2026-03-23", "09:30", "10:00")
    alice_api = client_for(alice)
    assert alice_api.post(reverse("api-booking-cancel", args=[soon.pk]), {}, format="json").status_code == 400
    response = alice_api.post(
        reverse("api-booking-cancel", args=[soon.pk]), {"reason": "Fire drill"}, format="json"
    )
    assert response.status_code == 200
    assert notifications_about(booking=soon).get(recipient=member).body == "Fire drill"


def test_a_maintenance_window_refuses_to_overwrite_bookings_unless_told_to_cancel_them(
    lab, alice, member, printer
):
    booking = book(printer, member, WEDNESDAY, "10:00", "11:00")
    payload = {
        "start": at(lab, WEDNESDAY, "09:00").isoformat(),
        "end": at(lab, WEDNESDAY, "13:00").isoformat(),
        "reason": "Nozzle swap",
    }
    url = reverse("api-machine-maintenance", args=["fablab", "prusa"])
    refused = client_for(alice).post(url, payload, format="json")
    assert refused.status_code == 409 and refused.json()["overlapping"][0]["id"] == booking.pk
    done = client_for(alice).post(url, {**payload, "cancel_overlapping": True}, format="json")
    assert done.status_code == 201, done.content
    assert done.json()["kind"] == "maintenance" and done.json()["cancelled_bookings"] == [booking.pk]
    booking.refresh_from_db()
    assert booking.status == "cancelled" and "Nozzle swap" in booking.reason
    with pytest.raises(Conflict, match="in maintenance"):
        book(printer, member, WEDNESDAY, "12:00", "13:00")


def test_my_bookings_list_is_mine_only_and_paginated(lab, alice, member, printer):
    book(printer, member, WEDNESDAY, "10:00", "11:00")
    book(printer, alice, WEDNESDAY, "11:00", "12:00")
    response = client_for(member).get(reverse("api-booking-list"))
    assert response.status_code == 200
    assert [b["member"] for b in response.json()["results"]] == ["bob"]


def test_listing_the_lab_s_bookings_takes_a_fixed_number_of_queries(
    lab, alice, member, printer, django_assert_max_num_queries
):
    for hour in range(9, 19):
        book(printer, alice, WEDNESDAY, f"{hour:02}:00", f"{hour:02}:30")
    alice_api = client_for(alice)
    with django_assert_max_num_queries(8):
        response = alice_api.get(reverse("api-lab-bookings", args=["fablab"]))
    assert response.json()["count"] == 10
