"""Two bookings of one machine never overlap, however many requests race for a slot.

On PostgreSQL the exclusion constraint `booking_no_overlap` guarantees it; on SQLite the
write path that takes the database's write lock before checking. Each racer here runs
in its own thread with its own database connection, released together by a barrier.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from hub.exceptions import Conflict
from machines import selectors, services
from machines.models import Booking
from tests.factories import UserFactory
from tests.machines.factories import add_member, at, make_lab, make_machine

SATURDAY = date(2026, 3, 28)
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (scripts/with-postgres)"
)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite write path")


def race(machine, members, start, end) -> tuple[list[Booking], list[Exception]]:
    """Every member tries to book [start, end) at the same moment; (bookings, refusals)."""
    barrier = threading.Barrier(len(members))
    booked: list[Booking] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def attempt(member) -> None:
        try:
            barrier.wait(timeout=30)
            result = services.booking_create(machine=machine, member=member, start=start, end=end)
            with lock:
                booked.append(result)
        except Exception as exc:  # collected and asserted on below
            with lock:
                refused.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(m,)) for m in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return booked, refused


def no_overlap_in_the_table(machine) -> bool:
    rows = list(Booking.objects.filter(machine=machine, status__in=Booking.ACTIVE).order_by("start"))
    return all(a.end <= b.start for a, b in zip(rows, rows[1:], strict=False))


def racers(lab, count: int) -> list:
    members = [UserFactory(username=f"racer{n}") for n in range(count)]
    for member in members:
        add_member(lab, member)
    return members


@pytest.fixture
def racing_lab(alice, frozen):
    lab = make_lab(alice)
    return lab, make_machine(lab, slug="laser-one", kind="laser_cutter")


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_bookings_of_one_slot_on_postgres_give_one_booking(racing_lab):
    lab, machine = racing_lab
    start = at(lab, SATURDAY, "10:00")
    booked, refused = race(machine, racers(lab, 50), start, start + timedelta(hours=2))
    assert len(booked) == 1, refused[:3]
    assert len(refused) == 49
    assert all(isinstance(e, Conflict) and "already booked" in e.message for e in refused), refused[:3]
    assert all(e.extra["collides_with"]["id"] == booked[0].pk for e in refused)
    assert Booking.objects.filter(machine=machine).count() == 1
    assert no_overlap_in_the_table(machine)


@on_sqlite
@pytest.mark.django_db(transaction=True)
def test_simultaneous_bookings_of_one_slot_on_sqlite_give_one_booking(racing_lab):
    lab, machine = racing_lab
    start = at(lab, SATURDAY, "10:00")
    booked, refused = race(machine, racers(lab, 12), start, start + timedelta(hours=2))
    assert len(booked) == 1, refused[:3]
    assert len(refused) == 11 and all(isinstance(e, Conflict) for e in refused), refused[:3]
    assert Booking.objects.filter(machine=machine).count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_for_different_slots_books_them_all(racing_lab):
    lab, machine = racing_lab
    members = racers(lab, 6)
    barrier = threading.Barrier(len(members))
    errors: list[Exception] = []

    def attempt(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            start = at(lab, SATURDAY, f"{10 + n}:00")
            services.booking_create(
                machine=machine, member=members[n], start=start, end=start + timedelta(hours=1)
            )
        except Exception as exc:  # asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(members))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert Booking.objects.filter(machine=machine, status="approved").count() == 6
    assert no_overlap_in_the_table(machine)


@on_postgres
@pytest.mark.django_db
def test_the_exclusion_constraint_refuses_an_overlap_that_skips_the_services(racing_lab, alice):
    lab, machine = racing_lab
    start = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    services.booking_create(machine=machine, member=alice, start=start, end=start + timedelta(hours=2))
    fields = {"machine": machine, "member": alice, "kind": "booking"}
    with pytest.raises(IntegrityError, match="booking_no_overlap"), transaction.atomic():
        Booking.objects.create(
            **fields, status="pending", start=start + timedelta(hours=1), end=start + timedelta(hours=3)
        )
    # Inactive rows and a touching range ([end, …) is half-open) take no part.
    Booking.objects.create(**fields, status="cancelled", start=start, end=start + timedelta(hours=2))
    Booking.objects.create(**fields, status="refused", start=start, end=start + timedelta(hours=2))
    Booking.objects.create(
        **fields, status="approved", start=start + timedelta(hours=2), end=start + timedelta(hours=3)
    )
    other = make_machine(lab, slug="laser-two", kind="laser_cutter")
    Booking.objects.create(
        **{**fields, "machine": other}, status="approved", start=start, end=start + timedelta(hours=2)
    )


@on_postgres
@pytest.mark.django_db
def test_the_constraint_s_refusal_becomes_a_conflict_naming_the_slot(racing_lab, alice, monkeypatch):
    lab, machine = racing_lab
    start = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    taken = services.booking_create(
        machine=machine, member=alice, start=start, end=start + timedelta(hours=2)
    )
    real = selectors.collision
    missed = []

    def misses_once(*args, **kwargs):  # the code check misses the overlap once, as a bug would
        if not missed:
            missed.append(True)
            return None
        return real(*args, **kwargs)

    monkeypatch.setattr(selectors, "collision", misses_once)
    with pytest.raises(Conflict) as refused:
        services.booking_create(
            machine=machine, member=alice, start=start + timedelta(hours=1), end=start + timedelta(hours=3)
        )
    assert refused.value.extra["collides_with"]["id"] == taken.pk
