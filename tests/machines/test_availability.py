"""Free slots honour opening hours, closures, bookings and maintenance windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from machines import selectors, services
from machines.models import Booking
from tests.machines.factories import at, book, make_machine

pytestmark = pytest.mark.django_db

TUESDAY = date(2026, 3, 24)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_free_slots_leave_out_bookings_closures_and_maintenance(lab, alice, member, printer, api):
    book(printer, member, TUESDAY, "10:00", "11:30")
    services.maintenance_block(
        machine=printer,
        actor=alice,
        start=at(lab, TUESDAY, "14:00"),
        end=at(lab, TUESDAY, "15:00"),
        reason="Belts",
    )
    services.closure_create(
        lab=lab, actor=alice, start=at(lab, TUESDAY, "18:00"), end=at(lab, TUESDAY, "21:00")
    )
    response = api.get(
        reverse("api-machine-availability", args=["fablab", "prusa"]),
        {"start": "2026-03-24", "end": "2026-03-25"},
    )
    assert response.status_code == 200, response.content
    free = [(s["start"], s["end"]) for s in response.json()["free"]]
    assert free == [
        ("2026-03-24T08:00:00Z", "2026-03-24T09:00:00Z"),  # 09:00–10:00 Paris
        ("2026-03-24T10:30:00Z", "2026-03-24T13:00:00Z"),  # 11:30–14:00
        ("2026-03-24T14:00:00Z", "2026-03-24T17:00:00Z"),  # 15:00–18:00
    ]
    assert response.json()["timezone"] == "Europe/Paris"


def test_cancelled_and_refused_bookings_free_their_slot(lab, alice, member, printer):
    booking = book(printer, member, TUESDAY, "10:00", "12:00")
    services.booking_cancel(booking=booking, actor=member)
    again = book(printer, alice, TUESDAY, "10:00", "12:00")
    assert again.status == Booking.Status.APPROVED
    free = selectors.machine_free_slots(printer, at(lab, TUESDAY, "09:00"), at(lab, TUESDAY, "13:00"))
    assert free == [(utc(24, 8), utc(24, 9)), (utc(24, 11), utc(24, 12))]


def test_no_slot_starts_before_the_notice_period_or_after_the_horizon(lab, alice, printer, frozen):
    services.lab_update(lab=lab, actor=alice, min_notice_minutes=90, max_horizon_days=2)
    free = selectors.machine_free_slots(printer, utc(23, 0), utc(30, 0))
    assert free[0][0] == utc(23, 9, 30)  # now (08:00 UTC) + 90 minutes
    assert free[-1][1] <= utc(25, 8, 0)


def test_a_machine_out_of_order_has_no_free_slot(lab, alice, printer):
    services.machine_set_status(machine=printer, actor=alice, status="out_of_order", reason="Broken bed")
    printer.refresh_from_db()
    assert selectors.machine_free_slots(printer, utc(24, 0), utc(25, 0)) == []


def test_every_machine_of_a_kind_is_listed_with_its_slots(lab, alice, member, printer, api):
    second = make_machine(lab, slug="bambu", kind="fdm_printer", name="Bambu X1", max_booking_minutes=720)
    book(second, member, TUESDAY, "09:00", "21:00")
    response = api.get(
        reverse("api-lab-availability", args=["fablab"]),
        {"kind": "fdm_printer", "start": "2026-03-24", "end": "2026-03-25"},
    )
    assert response.status_code == 200
    by_machine = {row["machine_slug"]: row["free"] for row in response.json()}
    assert by_machine["bambu"] == []
    assert len(by_machine["prusa"]) == 1


def test_the_first_free_slot_of_a_length_is_found_on_any_machine_of_the_kind(
    lab, alice, member, printer, api
):
    second = make_machine(lab, slug="bambu", kind="fdm_printer", name="Bambu X1")
    # Today (Monday) from 09:00: the Prusa is busy until 15:00, the Bambu free 12:00–14:00 only.
    book(printer, alice, "2026-03-23", "09:00", "13:00")
    book(printer, alice, "2026-03-23", "13:00", "15:00")
    book(second, alice, "2026-03-23", "09:00", "12:00")
    book(second, alice, "2026-03-23", "14:00", "18:00")
    response = api.get(
        reverse("api-lab-first-free-slot", args=["fablab"]), {"kind": "fdm_printer", "minutes": "120"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["machine_slug"] == "bambu"
    assert response.json()["local_start"] == "2026-03-23T12:00:00+01:00"
    longer = api.get(
        reverse("api-lab-first-free-slot", args=["fablab"]), {"kind": "fdm_printer", "minutes": "180"}
    )
    assert longer.json()["machine_slug"] == "prusa"
    assert longer.json()["local_start"] == "2026-03-23T15:00:00+01:00"


def test_the_first_free_slot_skips_machines_the_member_is_not_trained_for(lab, alice, member, laser):
    assert selectors.first_free_slot(lab, "laser_cutter", 60, member=member) is None
    services.qualification_record(
        lab=lab, actor=alice, member=member, kind="laser_cutter", trained_on=date(2026, 1, 5)
    )
    machine, start, _ = selectors.first_free_slot(lab, "laser_cutter", 60, member=member)
    assert machine == laser and start == utc(23, 8)


def test_no_free_slot_is_a_404_with_a_message(lab, printer, api):
    response = api.get(
        reverse("api-lab-first-free-slot", args=["fablab"]), {"kind": "fdm_printer", "minutes": "900"}
    )
    assert response.status_code == 404
    assert "free that long" in response.json()["detail"]


def test_the_timeline_read_finds_the_row_running_into_the_window(lab, alice, printer):
    services.maintenance_block(
        machine=printer, actor=alice, start=utc(20, 0), end=utc(24, 9), reason="Long overhaul"
    )
    for day in range(25, 28):
        book(printer, alice, date(2026, 3, day), "10:00", "11:00")
    rows = selectors.timeline_between(printer, utc(24, 0), utc(26, 0))
    assert [r.kind for r in rows] == ["maintenance", "booking"]
    assert selectors.timeline_between(printer, utc(24, 9), utc(25, 0)) == []


def test_a_machine_s_free_slots_are_one_query_with_the_row_running_into_the_window(
    lab, alice, printer, django_assert_num_queries
):
    """Hours, closures, the rows inside the window and the one running into it: one read."""
    services.maintenance_block(
        machine=printer, actor=alice, start=utc(23, 12), end=utc(24, 9), reason="Long overhaul"
    )
    book(printer, alice, TUESDAY, "14:00", "15:00")
    services.closure_create(lab=lab, actor=alice, start=utc(24, 16), end=utc(24, 17), reason="Talk")
    with django_assert_num_queries(1):
        free = selectors.machine_free_slots(printer, utc(24, 0), utc(25, 0))
    assert free == [(utc(24, 9), utc(24, 13)), (utc(24, 14), utc(24, 16)), (utc(24, 17), utc(24, 20))]


def test_availability_refuses_a_naive_time_and_a_range_too_long(lab, printer, api):
    url = reverse("api-machine-availability", args=["fablab", "prusa"])
    naive = api.get(url, {"start": "2026-03-24T10:00:00"})
    assert naive.status_code == 400 and "time zone" in naive.json()["detail"]
    long = api.get(url, {"start": "2026-03-24", "end": "2026-12-24"})
    assert long.status_code == 400 and "at most" in long.json()["detail"]
    assert (timedelta(days=selectors.MAX_AVAILABILITY_DAYS)).days == 93
