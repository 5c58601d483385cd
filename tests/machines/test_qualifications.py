"""Qualifications: recorded by managers, checked at booking time and again at the start."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.urls import reverse

from hub.exceptions import PermissionDenied, ValidationError
from machines import services
from machines.models import Booking
from machines.notifications import notifications_about
from machines.tasks import check_starting_bookings
from tests.conftest import client_for
from tests.machines.factories import book, make_machine

pytestmark = pytest.mark.django_db


def test_a_manager_records_a_training_for_a_machine_through_the_api(lab, alice, member, laser):
    response = client_for(alice).post(
        reverse("api-lab-qualifications", args=["fablab"]),
        {"member": "bob", "machine": "laser", "trained_on": "2026-03-01", "expires_on": "2027-03-01"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["trainer"] == "alice"
    assert book(laser, member, "2026-03-25", "10:00", "11:00").status == "approved"
    own = client_for(member).get(reverse("api-lab-qualifications", args=["fablab"])).json()
    assert [q["machine"] for q in own] == ["laser"]


def test_a_training_for_a_kind_covers_every_machine_of_that_kind(lab, alice, member, laser):
    second = make_machine(lab, slug="big-laser", requires_qualification=True)
    services.qualification_record(
        lab=lab, actor=alice, member=member, kind="laser_cutter", trained_on=date(2026, 1, 1)
    )
    assert book(second, member, "2026-03-25", "10:00", "11:00").status == "approved"


def test_an_expired_qualification_does_not_count(lab, alice, member, laser):
    services.qualification_record(
        lab=lab,
        actor=alice,
        member=member,
        machine=laser,
        trained_on=date(2025, 1, 1),
        expires_on=date(2026, 1, 1),
    )
    with pytest.raises(PermissionDenied, match="needs a training"):
        book(laser, member, "2026-03-25", "10:00", "11:00")


def test_a_qualification_expiring_before_the_booking_is_refused_at_booking_time(lab, alice, member, laser):
    services.qualification_record(
        lab=lab,
        actor=alice,
        member=member,
        machine=laser,
        trained_on=date(2025, 1, 1),
        expires_on=date(2026, 3, 24),
    )
    with pytest.raises(PermissionDenied, match="expires before 25 Mar 2026"):
        book(laser, member, "2026-03-25", "10:00", "11:00")


def test_a_qualification_revoked_before_the_start_cancels_the_booking_at_start(lab, alice, member, laser):
    qualification = services.qualification_record(
        lab=lab, actor=alice, member=member, machine=laser, trained_on=date(2026, 1, 1)
    )
    booking = book(laser, member, "2026-03-25", "10:00", "11:00")
    services.qualification_revoke(qualification=qualification, actor=alice)
    with time_machine.travel(datetime(2026, 3, 25, 8, 50, tzinfo=UTC), tick=False):
        assert check_starting_bookings() == 1
        assert check_starting_bookings() == 0  # checked once
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED and "No valid qualification" in booking.reason
    assert (
        notifications_about(booking=booking)
        .filter(recipient=member, subject__startswith="Cancelled")
        .exists()
    )


def test_only_members_can_be_recorded_and_only_for_the_lab_s_machines(lab, alice, bob, member, laser):
    from tests.machines.factories import make_lab

    other = make_lab(alice, slug="other-lab")
    foreign = make_machine(other, slug="cnc", kind="cnc_mill")
    with pytest.raises(ValidationError, match="not a machine of Fablab"):
        services.qualification_record(
            lab=lab, actor=alice, member=member, machine=foreign, trained_on=date(2026, 1, 1)
        )
    with pytest.raises(ValidationError, match="not a member of Other Lab"):
        services.qualification_record(
            lab=other, actor=alice, member=bob, kind="cnc_mill", trained_on=date(2026, 1, 1)
        )
    with pytest.raises(ValidationError, match="either a machine or a kind"):
        services.qualification_record(
            lab=lab,
            actor=alice,
            member=member,
            machine=laser,
            kind="laser_cutter",
            trained_on=date(2026, 1, 1),
        )


def test_a_database_error_during_the_start_check_leaves_the_booking_to_check_again(
    lab, alice, member, laser, monkeypatch
):
    """The check claims the booking first; a database error before it is decided undoes the
    claim, so the task's retry (hub.celery.HubTask) checks it rather than skipping it."""
    from django.db import OperationalError

    from machines.services import bookings

    qualification = services.qualification_record(
        lab=lab, actor=alice, member=member, machine=laser, trained_on=date(2026, 1, 1)
    )
    booking = book(laser, member, "2026-03-25", "10:00", "11:00")
    services.qualification_revoke(qualification=qualification, actor=alice)
    real = bookings.selectors.qualification_for
    calls: list[int] = []

    def database_gone_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the database system is starting up")
        return real(*args, **kwargs)

    monkeypatch.setattr(bookings.selectors, "qualification_for", database_gone_once)
    with time_machine.travel(datetime(2026, 3, 25, 8, 50, tzinfo=UTC), tick=False):
        assert check_starting_bookings.apply().result == 1  # the retry checked it
    assert len(calls) == 2
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED and "No valid qualification" in booking.reason
