"""Times are stored in UTC and ruled in the lab's zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from machines import selectors, services
from machines.models import Booking
from tests.conftest import client_for
from tests.machines.factories import at, make_lab, make_machine

pytestmark = pytest.mark.django_db


def test_a_booking_across_the_spring_change_lasts_real_hours_and_is_stored_in_utc(alice, bob, frozen):
    # Open all day and night: Saturday 22:00 to Sunday 04:00 in Paris spans 02:00 → 03:00.
    lab = make_lab(alice, hours="00:00-00:00", max_booking_minutes=600)
    services.membership_join(lab=lab, user=bob)
    machine = make_machine(lab, slug="cnc", kind="cnc_mill")
    response = client_for(bob).post(
        reverse("api-booking-list"),
        {"machine": machine.pk, "start": "2026-03-28T22:00:00+01:00", "end": "2026-03-29T04:00:00+02:00"},
        format="json",
    )
    assert response.status_code == 201, response.content
    booking = Booking.objects.get()
    assert booking.start == datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    assert booking.end == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert booking.duration == timedelta(hours=5)  # six on the wall clock, five in reality
    body = response.json()
    assert body["start"] == "2026-03-28T21:00:00Z"
    assert body["local_start"] == "2026-03-28T22:00:00+01:00"
    assert body["local_end"] == "2026-03-29T04:00:00+02:00"


def test_the_weekly_quota_counts_real_hours_across_the_change(alice, bob, frozen):
    lab = make_lab(alice, hours="00:00-00:00", max_booking_minutes=600, weekly_quota_minutes=300)
    services.membership_join(lab=lab, user=bob)
    machine = make_machine(lab, slug="cnc", kind="cnc_mill")
    # 22:00 → 04:00 is six wall-clock hours but five real ones: exactly the quota.
    services.booking_create(
        machine=machine, member=bob, start=at(lab, "2026-03-28", "22:00"), end=at(lab, "2026-03-29", "04:00")
    )
    assert (
        selectors.booked_minutes(
            bob, machine, at(lab, "2026-03-23", "00:00"), at(lab, "2026-03-30", "00:00"), per_machine=False
        )
        == 300
    )


def test_opening_hours_follow_the_wall_clock_after_the_change(lab, printer):
    saturday, sunday = date(2026, 3, 28), date(2026, 3, 29)
    free = selectors.machine_free_slots(
        printer, at(lab, saturday, "00:00"), at(lab, sunday + timedelta(days=1), "00:00")
    )
    # 09:00–21:00 in Paris: 08:00–20:00 UTC before the change, 07:00–19:00 after it.
    assert free == [
        (datetime(2026, 3, 28, 8, 0, tzinfo=UTC), datetime(2026, 3, 28, 20, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 7, 0, tzinfo=UTC), datetime(2026, 3, 29, 19, 0, tzinfo=UTC)),
    ]


def test_a_lab_elsewhere_rules_in_its_own_zone(alice, bob, frozen):
    lab = make_lab(alice, slug="tokyo", tz="Asia/Tokyo", hours="10:00-18:00")
    services.membership_join(lab=lab, user=bob)
    machine = make_machine(lab, slug="vinyl", kind="vinyl_cutter")
    # 09:30 in Tokyo is before opening, although it is 00:30 UTC.
    response = client_for(bob).post(
        reverse("api-booking-list"),
        {"machine": machine.pk, "start": "2026-03-25T00:30:00Z", "end": "2026-03-25T01:30:00Z"},
        format="json",
    )
    assert response.status_code == 400
    assert "outside Tokyo's opening hours" in response.json()["detail"]
    assert "Wed 25 Mar 2026 09:30–10:30 (Asia/Tokyo)" in response.json()["detail"]


def test_a_lab_with_an_unknown_time_zone_is_refused(alice, frozen):
    response = client_for(alice).post(
        reverse("api-lab-list"),
        {"name": "Moon base", "slug": "moon", "timezone": "Moon/Tranquility"},
        format="json",
    )
    assert response.status_code == 400
    assert "not a time zone name" in response.json()["detail"]
