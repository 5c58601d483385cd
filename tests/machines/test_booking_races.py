"""A manager's change that lands between a booking's first read and its write.

When Python decides a booking (every booking on SQLite; on PostgreSQL those the one
statement leaves to it, as here on the day before the clocks change), `booking_create`
reads the rules' sources once (`selectors.booking_context`) to refuse early, then writes.
A closure, new opening hours, a revoked qualification, a demotion or a lab's new rule
committed in between must still decide the booking: it is decided again under the
timeline lock. Each test makes the change, through the real service, right after that
first read. The one statement's own race (a change committed while it waits for the
machine's row) is in test_plain_booking_statement.py.
"""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from django.db import connection

from hub.exceptions import PermissionDenied, ValidationError
from machines import selectors, services
from machines.models import Booking, LabMembership
from tests.factories import UserFactory
from tests.machines.factories import at, make_machine

SATURDAY = date(2026, 3, 28)


def after_the_first_read(monkeypatch, change) -> list[int]:
    """Run `change()` once, just after the booking's first `booking_context`; returns the
    list of reads made, so a test can see the booking read again."""
    real = selectors.booking_context
    reads: list[int] = []

    def read_then_change(**kwargs):
        context = real(**kwargs)
        reads.append(1)
        if len(reads) == 1:
            change()
        return context

    monkeypatch.setattr(selectors, "booking_context", read_then_change)
    return reads


@pytest.fixture
def saw(lab):
    return make_machine(lab, slug="saw", kind="cnc_mill", name="Saw")


def test_a_closure_made_after_the_read_refuses_the_booking(lab, alice, member, saw, monkeypatch):
    start = at(lab, SATURDAY, "10:00")
    after_the_first_read(
        monkeypatch,
        lambda: services.closure_create(
            lab=lab,
            actor=alice,
            start=at(lab, SATURDAY, "00:00"),
            end=at(lab, "2026-03-29", "00:00"),
            reason="inventory",
        ),
    )
    with pytest.raises(ValidationError, match="closed .*inventory"):
        services.booking_create(machine=saw, member=member, start=start, end=start + timedelta(hours=2))
    assert not Booking.objects.filter(machine=saw).exists()


def test_opening_hours_changed_after_the_read_refuse_the_booking(lab, alice, member, saw, monkeypatch):
    start = at(lab, SATURDAY, "10:00")
    weekdays_only = [(d, time(9), time(21)) for d in range(5)]
    after_the_first_read(
        monkeypatch, lambda: services.lab_set_hours(lab=lab, actor=alice, hours=weekdays_only)
    )
    with pytest.raises(ValidationError, match="outside .* opening hours"):
        services.booking_create(machine=saw, member=member, start=start, end=start + timedelta(hours=2))
    assert not Booking.objects.filter(machine=saw).exists()


def test_a_qualification_revoked_after_the_read_refuses_the_booking(lab, alice, member, laser, monkeypatch):
    qualification = services.qualification_record(
        lab=lab, actor=alice, member=member, machine=laser, trained_on=date(2026, 1, 1)
    )
    start = at(lab, SATURDAY, "10:00")
    after_the_first_read(
        monkeypatch, lambda: services.qualification_revoke(qualification=qualification, actor=alice)
    )
    with pytest.raises(PermissionDenied, match="needs a training"):
        services.booking_create(machine=laser, member=member, start=start, end=start + timedelta(hours=2))
    assert not Booking.objects.filter(machine=laser).exists()


def test_a_member_removed_after_the_read_is_not_booked(lab, alice, member, saw, monkeypatch):
    start = at(lab, SATURDAY, "10:00")
    after_the_first_read(monkeypatch, lambda: services.membership_remove(lab=lab, actor=alice, user=member))
    with pytest.raises(PermissionDenied):
        services.booking_create(machine=saw, member=member, start=start, end=start + timedelta(hours=2))
    assert not Booking.objects.filter(machine=saw).exists()


def test_a_manager_demoted_after_the_read_waits_for_approval(lab, alice, saw, monkeypatch):
    """Approval is decided from what holds under the lock, not from the first read."""
    services.lab_update(lab=lab, actor=alice, requires_approval=True)
    carol = UserFactory(username="carol")
    services.membership_join(lab=lab, user=carol)
    services.membership_set_role(lab=lab, actor=alice, user=carol, role=LabMembership.Role.MANAGER)
    start = at(lab, SATURDAY, "10:00")
    reads = after_the_first_read(
        monkeypatch,
        lambda: services.membership_set_role(
            lab=lab, actor=alice, user=carol, role=LabMembership.Role.MEMBER
        ),
    )
    booking = services.booking_create(machine=saw, member=carol, start=start, end=start + timedelta(hours=2))
    assert booking.status == Booking.Status.PENDING
    assert len(reads) == 2  # read again under the lock


def test_approval_required_after_the_read_applies(lab, alice, member, saw, monkeypatch):
    start = at(lab, SATURDAY, "10:00")
    after_the_first_read(
        monkeypatch, lambda: services.lab_update(lab=lab, actor=alice, requires_approval=True)
    )
    booking = services.booking_create(machine=saw, member=member, start=start, end=start + timedelta(hours=2))
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.PENDING


def test_a_plain_booking_is_read_by_python_only_where_python_decides_it(lab, member, saw, monkeypatch):
    start = at(lab, "2026-03-25", "10:00")  # a Wednesday, no clock change near it
    reads = after_the_first_read(monkeypatch, lambda: None)
    booking = services.booking_create(machine=saw, member=member, start=start, end=start + timedelta(hours=2))
    assert booking.status == Booking.Status.APPROVED
    # PostgreSQL's one statement checks the rules itself; SQLite reads, then reads again under the lock.
    assert len(reads) == (0 if connection.vendor == "postgresql" else 2)


def test_a_closure_flags_a_booking_that_committed_before_it(lab, alice, member, saw):
    start = at(lab, SATURDAY, "10:00")
    booking = services.booking_create(machine=saw, member=member, start=start, end=start + timedelta(hours=2))
    _, flagged = services.closure_create(
        lab=lab, actor=alice, start=at(lab, SATURDAY, "00:00"), end=at(lab, "2026-03-29", "00:00")
    )
    assert [b.pk for b in flagged] == [booking.pk]
    assert Booking.objects.get(pk=booking.pk).needs_decision
