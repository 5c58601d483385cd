"""The lab pages render for each kind of visitor, and the forms call the services."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from machines import services
from machines.models import Booking, Machine
from tests.machines.factories import book

pytestmark = pytest.mark.django_db


def page_urls() -> list[str]:
    return [
        reverse("lab-list"),
        reverse("lab-detail", args=["fablab"]),
        reverse("lab-detail", args=["fablab"]) + "?week=2026-03-30",
        reverse("machine-detail", args=["fablab", "prusa"]),
        reverse("machine-detail", args=["fablab", "laser"]) + "?from=2026-04-01",
    ]


MANAGER_URLS = ["lab-manage", "lab-approvals", "lab-qualifications", "lab-maintenance", "machine-new"]


@pytest.fixture
def busy_lab(lab, alice, member, printer, laser):
    book(printer, member, date(2026, 3, 25), "10:00", "11:00")
    services.machine_set_status(machine=laser, actor=alice, status="maintenance", reason="Lens")
    return lab


def test_every_page_renders_for_a_visitor_a_member_and_the_manager(busy_lab, alice, member, client):
    for user in (None, member, alice):
        if user:
            client.force_login(user)
        for url in page_urls():
            response = client.get(url)
            assert response.status_code == 200, (user, url)
    for name in MANAGER_URLS:
        assert client.get(reverse(name, args=["fablab"])).status_code == 200, name
    for name in ("my-bookings", "notifications", "lab-new"):
        assert client.get(reverse(name)).status_code == 200, name
    assert client.get(reverse("machine-edit", args=["fablab", "prusa"])).status_code == 200


def test_the_week_calendar_shows_bookings_in_the_lab_s_time(busy_lab, member, client):
    client.force_login(member)
    body = client.get(reverse("lab-detail", args=["fablab"])).content.decode()
    assert "10:00–11:00" in body and "Lens" not in body  # status reason is for the machine page
    assert "In maintenance" in body


def test_manager_pages_are_403_for_a_member(busy_lab, member, client):
    client.force_login(member)
    for name in MANAGER_URLS:
        assert client.get(reverse(name, args=["fablab"])).status_code == 403, name


def test_a_member_books_through_the_form_and_sees_it_in_my_bookings(lab, member, printer, client):
    client.force_login(member)
    response = client.post(
        reverse("machine-detail", args=["fablab", "prusa"]),
        {"day": "2026-03-26", "start_time": "14:00", "end_time": "15:30", "note": "Gears"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    booking = Booking.objects.get()
    assert booking.start.isoformat() == "2026-03-26T13:00:00+00:00"
    body = client.get(reverse("my-bookings")).content.decode()
    assert "Thu 26 Mar 2026 14:00–15:30" in body


def test_a_refused_booking_shows_its_reason_in_the_form(lab, alice, member, printer, client):
    book(printer, alice, date(2026, 3, 26), "14:00", "16:00")
    client.force_login(member)
    response = client.post(
        reverse("machine-detail", args=["fablab", "prusa"]),
        {"day": "2026-03-26", "start_time": "15:00", "end_time": "16:00"},
    )
    assert response.status_code == 200
    assert "already booked Thu 26 Mar 2026 14:00–16:00" in response.content.decode()


def test_a_manager_sets_hours_adds_a_machine_and_approves_from_the_pages(lab, alice, member, client):
    client.force_login(alice)
    response = client.post(
        reverse("lab-manage", args=["fablab"]),
        {
            "action": "hours",
            **{f"day{n}": "09:00-12:00, 14:00-18:00" for n in range(5)},
            "day5": "10:00-24:00",
        },
    )
    assert response.status_code == 302
    assert lab.opening_hours.count() == 11
    response = client.post(
        reverse("machine-new", args=["fablab"]),
        {
            "name": "Cutter",
            "slug": "cutter",
            "kind": "vinyl_cutter",
            "capabilities": '{"width_mm": 600}',
            "connection_url": "",
            "requires_approval": "unknown",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Machine.objects.get(slug="cutter").capabilities == {"width_mm": 600}
    services.lab_update(lab=lab, actor=alice, requires_approval=True)
    booking = book(Machine.objects.get(slug="cutter"), member, date(2026, 3, 26), "10:00", "11:00")
    response = client.post(
        reverse("lab-approvals", args=["fablab"]), {"booking_id": booking.pk, "action": "approve"}
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == "approved"


def test_a_manager_records_a_qualification_and_a_maintenance_window_from_the_pages(
    lab, alice, member, laser, client
):
    client.force_login(alice)
    response = client.post(
        reverse("lab-qualifications", args=["fablab"]),
        {
            "action": "record",
            "member": "bob",
            "machine": laser.pk,
            "trained_on": "2026-03-01",
        },
    )
    assert response.status_code == 302
    assert laser.qualifications.filter(member=member).exists()
    response = client.post(
        reverse("lab-maintenance", args=["fablab"]),
        {
            "action": "window",
            "machine": laser.pk,
            "day": "2026-03-27",
            "start_time": "09:00",
            "end_time": "12:00",
            "reason": "Mirror cleaning",
        },
    )
    assert response.status_code == 302
    assert Booking.objects.get(kind="maintenance").reason == "Mirror cleaning"
