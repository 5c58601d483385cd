"""A machine going into maintenance or out of order tells the members whose bookings it
breaks, and a manager decides: cancel, or keep."""

from __future__ import annotations

from datetime import date

import pytest
from django.core import mail
from django.urls import reverse

from hub.models import Notification
from machines import services
from machines.models import Booking
from machines.notifications import notifications_about
from tests.conftest import client_for
from tests.machines.factories import book

pytestmark = pytest.mark.django_db

THURSDAY = date(2026, 3, 26)


def test_going_out_of_order_flags_future_bookings_and_tells_their_members(
    lab, alice, member, printer, django_capture_on_commit_callbacks
):
    booking = book(printer, member, THURSDAY, "10:00", "11:00")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post(
            reverse("api-machine-status", args=["fablab", "prusa"]),
            {"status": "out_of_order", "reason": "Heater cartridge died"},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert [b["id"] for b in response.json()] == [booking.pk]
    booking.refresh_from_db()
    assert booking.needs_decision and booking.status == "approved"
    note = notifications_about(booking=booking).get(recipient=member)
    assert "Prusa MK4 is out of order" in note.subject and "Heater cartridge died" in note.body
    assert mail.outbox[-1].to == ["bob@example.org"]
    assert "Prusa MK4 is out of order" in mail.outbox[-1].subject


def test_a_status_without_reason_is_refused(lab, alice, printer):
    response = client_for(alice).post(
        reverse("api-machine-status", args=["fablab", "prusa"]), {"status": "maintenance"}, format="json"
    )
    assert response.status_code == 400 and "Say why" in response.json()["detail"]


def test_the_manager_keeps_one_booking_and_cancels_another(lab, alice, member, printer):
    kept = book(printer, member, THURSDAY, "10:00", "11:00")
    dropped = book(printer, member, THURSDAY, "15:00", "16:00")
    services.machine_set_status(machine=printer, actor=alice, status="maintenance", reason="Calibration")
    alice_api = client_for(alice)
    flagged = alice_api.get(reverse("api-lab-bookings", args=["fablab"]), {"needs_decision": "true"}).json()
    assert {b["id"] for b in flagged["results"]} == {kept.pk, dropped.pk}
    assert alice_api.post(reverse("api-booking-keep", args=[kept.pk]), format="json").status_code == 200
    response = alice_api.post(
        reverse("api-booking-cancel", args=[dropped.pk]), {"reason": "Still calibrating"}, format="json"
    )
    assert response.status_code == 200
    kept.refresh_from_db()
    dropped.refresh_from_db()
    assert (kept.status, kept.needs_decision) == ("approved", False)
    assert (dropped.status, dropped.needs_decision) == ("cancelled", False)
    assert Notification.objects.filter(recipient=member, subject__startswith="Kept").exists()
    assert alice_api.post(reverse("api-booking-keep", args=[kept.pk]), format="json").status_code == 409


def test_back_in_service_clears_the_flags_and_says_the_bookings_stand(lab, alice, member, printer):
    booking = book(printer, member, THURSDAY, "10:00", "11:00")
    services.machine_set_status(machine=printer, actor=alice, status="maintenance", reason="Calibration")
    services.machine_set_status(machine=printer, actor=alice, status="available")
    booking.refresh_from_db()
    assert not booking.needs_decision
    assert Notification.objects.filter(recipient=member, subject__contains="back in service").exists()
    printer.refresh_from_db()
    assert printer.status_reason == "" and printer.is_bookable


def test_a_closure_over_bookings_flags_them_for_a_decision(lab, alice, member, printer):
    from tests.machines.factories import at

    booking = book(printer, member, THURSDAY, "10:00", "11:00")
    _, flagged = services.closure_create(
        lab=lab,
        actor=alice,
        start=at(lab, THURSDAY, "00:00"),
        end=at(lab, "2026-03-27", "00:00"),
        reason="Strike",
    )
    assert flagged == [booking]
    assert Booking.objects.get(pk=booking.pk).needs_decision
