"""Every kind of bad booking request gets a clear 4xx with a message, through the API."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from machines import services
from machines.models import Booking
from tests.conftest import client_for
from tests.machines.factories import add_member, at, make_lab, make_machine

pytestmark = pytest.mark.django_db

SATURDAY = date(2026, 3, 28)


def post_booking(client, machine, start, end, **extra):
    payload = {"machine": machine.pk, "start": start, "end": end, **extra}
    return client.post(reverse("api-booking-list"), payload, format="json")


def iso(instant) -> str:
    return instant.isoformat()


@pytest.fixture
def bob_api(member):
    return client_for(member)


def assert_refused(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.content
    text = str(response.json()).lower()
    for word in words:
        assert word.lower() in text, (word, response.json())
    assert not Booking.objects.filter(member__username="bob").exists()


def test_a_booking_that_ends_before_it_starts_is_refused(lab, printer, bob_api):
    response = post_booking(
        bob_api, printer, iso(at(lab, SATURDAY, "12:00")), iso(at(lab, SATURDAY, "10:00"))
    )
    assert_refused(response, 400, "ends before it starts")


def test_a_booking_of_zero_length_is_refused(lab, printer, bob_api):
    start = iso(at(lab, SATURDAY, "10:00"))
    assert_refused(post_booking(bob_api, printer, start, start), 400, "no length")


def test_a_booking_with_naive_datetimes_is_refused(printer, bob_api):
    response = post_booking(bob_api, printer, "2026-03-28T10:00:00", "2026-03-28T11:00:00")
    assert_refused(response, 400, "time zone", "offset")


def test_a_booking_across_a_closure_is_refused(lab, alice, printer, bob_api):
    services.closure_create(
        lab=lab,
        actor=alice,
        start=at(lab, SATURDAY, "12:00"),
        end=at(lab, SATURDAY, "14:00"),
        reason="Open day",
    )
    response = post_booking(
        bob_api, printer, iso(at(lab, SATURDAY, "11:00")), iso(at(lab, SATURDAY, "13:00"))
    )
    assert_refused(response, 400, "closed", "open day")


def test_a_booking_for_a_machine_of_another_lab_is_refused(lab, alice, bob_api):
    other = make_lab(alice, slug="makerspace")
    machine = make_machine(other, slug="cnc", kind="cnc_mill")
    response = post_booking(
        bob_api, machine, iso(at(lab, SATURDAY, "10:00")), iso(at(lab, SATURDAY, "11:00"))
    )
    assert_refused(response, 403, "members of makerspace")


def test_an_unqualified_member_cannot_book_a_machine_that_needs_training(lab, laser, bob_api):
    response = post_booking(bob_api, laser, iso(at(lab, SATURDAY, "10:00")), iso(at(lab, SATURDAY, "11:00")))
    assert_refused(response, 403, "needs a training")


def test_a_booking_over_the_weekly_quota_is_refused(lab, alice, member, printer, bob_api):
    services.lab_update(lab=lab, actor=alice, weekly_quota_minutes=180)
    services.booking_create(
        machine=printer,
        member=member,
        start=at(lab, "2026-03-24", "10:00"),
        end=at(lab, "2026-03-24", "12:00"),
    )
    response = post_booking(
        bob_api, printer, iso(at(lab, SATURDAY, "10:00")), iso(at(lab, SATURDAY, "12:00"))
    )
    assert response.status_code == 400, response.content
    assert "weekly quota of 3 h" in response.json()["detail"]
    assert "2 h booked already" in response.json()["detail"]


def test_a_machine_in_maintenance_cannot_be_booked(lab, alice, printer, bob_api):
    services.machine_set_status(machine=printer, actor=alice, status="maintenance", reason="New hotend")
    response = post_booking(
        bob_api, printer, iso(at(lab, SATURDAY, "10:00")), iso(at(lab, SATURDAY, "11:00"))
    )
    assert_refused(response, 409, "in maintenance", "new hotend")
    assert not Booking.objects.exists()


def test_a_forged_lab_in_the_payload_is_refused(lab, alice, member, bob_api):
    other = make_lab(alice, slug="makerspace")
    add_member(other, member)
    machine = make_machine(other, slug="cnc", kind="cnc_mill")
    response = post_booking(
        bob_api, machine, iso(at(lab, SATURDAY, "10:00")), iso(at(lab, SATURDAY, "11:00")), lab=lab.slug
    )
    assert_refused(response, 400, "machine of makerspace, not of fablab")


def test_a_manager_of_one_lab_cannot_act_on_another(lab, alice, bob, printer):
    other = make_lab(bob, slug="makerspace")
    bob_api = client_for(bob)
    booking = services.booking_create(
        machine=printer, member=alice, start=at(lab, SATURDAY, "10:00"), end=at(lab, SATURDAY, "11:00")
    )
    attempts = [
        bob_api.patch(reverse("api-lab-detail", args=["fablab"]), {"name": "Mine now"}, format="json"),
        bob_api.post(
            reverse("api-machine-status", args=["fablab", "prusa"]),
            {"status": "out_of_order", "reason": "x"},
            format="json",
        ),
        bob_api.post(
            reverse("api-machine-list", args=["fablab"]),
            {"name": "X", "slug": "x", "kind": "other"},
            format="json",
        ),
        bob_api.post(
            reverse("api-lab-qualifications", args=["fablab"]),
            {"member": "bob", "kind": "laser_cutter", "trained_on": "2026-03-01"},
            format="json",
        ),
        bob_api.get(reverse("api-lab-bookings", args=["fablab"])),
    ]
    for response in attempts:
        assert_refused(response, 403, "only managers of fablab")
    # Someone else's booking is not even visible to him.
    response = bob_api.post(
        reverse("api-booking-cancel", args=[booking.pk]), {"reason": "mine"}, format="json"
    )
    assert response.status_code == 404
    assert other.name == "Makerspace"


def test_a_refused_booking_says_which_slot_it_collides_with(lab, alice, member, printer, bob_api):
    taken = services.booking_create(
        machine=printer, member=alice, start=at(lab, SATURDAY, "10:00"), end=at(lab, SATURDAY, "12:00")
    )
    response = post_booking(
        bob_api, printer, iso(at(lab, SATURDAY, "11:00")), iso(at(lab, SATURDAY, "13:00"))
    )
    assert response.status_code == 409, response.content
    body = response.json()
    assert "already booked Sat 28 Mar 2026 10:00–12:00 (Europe/Paris)" in body["detail"]
    assert body["collides_with"]["id"] == taken.pk
    assert body["collides_with"]["start"] == "2026-03-28T09:00:00+00:00"


def test_a_note_with_a_nul_character_is_refused_before_it_reaches_the_database(lab, printer, bob_api):
    # PostgreSQL text cannot hold NUL: without this check the insert is a 500 there.
    response = post_booking(
        bob_api,
        printer,
        iso(at(lab, SATURDAY, "10:00")),
        iso(at(lab, SATURDAY, "11:00")),
        note="before\x00after",
    )
    assert_refused(response, 400, "null characters")


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        ("9999-12-31T23:00:00Z", "9999-12-31T23:30:00Z", ("days ahead",)),
        ("0001-01-01T00:30:00Z", "0001-01-01T01:30:00Z", ("passed",)),
    ],
)
def test_a_booking_at_the_ends_of_the_calendar_is_refused_in_words(lab, printer, bob_api, start, end, words):
    """A day before or after such a start is out of Python's calendar: the one statement's
    wall-clock parameters must not turn that into a server error."""
    assert_refused(post_booking(bob_api, printer, start, end), 400, *words)
