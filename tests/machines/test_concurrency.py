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
from django.test.utils import CaptureQueriesContext

from hub.exceptions import Conflict
from machines import selectors, services
from machines.models import Booking, Machine
from tests.concurrency import on_postgres, race
from tests.factories import UserFactory
from tests.machines.factories import add_member, at, make_lab, make_machine

SATURDAY = date(2026, 3, 28)
# A day with no clock change within a day of it: on PostgreSQL a plain booking that day is
# one statement. The day before the change (SATURDAY) the statement leaves it to Python.
WEDNESDAY = date(2026, 3, 25)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite write path")


def book_at_once(machine, members, start, end) -> tuple[list[Booking], list[Exception]]:
    """Every member tries to book [start, end) at the same moment; (bookings, refusals)."""
    return race(
        len(members),
        lambda n: services.booking_create(machine=machine, member=members[n], start=start, end=end),
    )


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
@pytest.mark.parametrize("day", [WEDNESDAY, SATURDAY], ids=["one statement", "decided in python"])
def test_fifty_simultaneous_bookings_of_one_slot_on_postgres_give_one_booking(racing_lab, day):
    lab, machine = racing_lab
    start = at(lab, day, "10:00")
    booked, refused = book_at_once(machine, racers(lab, 50), start, start + timedelta(hours=2))
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
    booked, refused = book_at_once(machine, racers(lab, 12), start, start + timedelta(hours=2))
    assert len(booked) == 1, refused[:3]
    assert len(refused) == 11 and all(isinstance(e, Conflict) for e in refused), refused[:3]
    assert Booking.objects.filter(machine=machine).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("day", [WEDNESDAY, SATURDAY])
def test_racing_for_different_slots_books_them_all(racing_lab, day):
    lab, machine = racing_lab
    members = racers(lab, 6)
    barrier = threading.Barrier(len(members))
    errors: list[Exception] = []

    def attempt(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            start = at(lab, day, f"{10 + n}:00")
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
def test_the_constraint_s_refusal_becomes_a_conflict_naming_the_slot_where_code_checks_first(
    racing_lab, alice, monkeypatch
):
    """A booking that counts a quota is written in a transaction that checks overlaps in
    code first; should that check miss, the constraint still refuses, with the same words."""
    lab, machine = racing_lab
    Machine.objects.filter(pk=machine.pk).update(weekly_quota_minutes=20 * 60)
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


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_plain_booking_on_postgres_is_one_statement_that_the_constraint_checks(racing_lab, alice):
    """No quota, approval or credit: the rules, the lock, the insert and the overlap check
    are one statement, and an overlap is refused naming the slot."""
    lab, machine = racing_lab
    start = at(lab, WEDNESDAY, "10:00")
    with CaptureQueriesContext(connection) as booked:
        taken = services.booking_create(
            machine=machine, member=alice, start=start, end=start + timedelta(hours=2)
        )
    assert len(booked.captured_queries) == 1, [q["sql"][:80] for q in booked.captured_queries]
    assert booked.captured_queries[0]["sql"].startswith("WITH locked AS (SELECT"), booked.captured_queries
    # The lock was taken (FOR NO KEY UPDATE) and the version left for the next booking's check.
    assert "FOR NO KEY UPDATE OF m" in booked.captured_queries[0]["sql"]
    assert Machine.objects.get(pk=machine.pk).timeline_version == 0
    with CaptureQueriesContext(connection) as refused_queries, pytest.raises(Conflict) as refused:
        services.booking_create(
            machine=machine, member=alice, start=start + timedelta(hours=1), end=start + timedelta(hours=3)
        )
    assert refused.value.extra["collides_with"]["id"] == taken.pk
    assert "already booked" in refused.value.message
    # It was the constraint: the write was tried, then the row in the way read for the message.
    statements = [q["sql"] for q in refused_queries.captured_queries]
    assert statements[0].startswith("WITH locked AS (SELECT"), statements
    assert len(statements) == 3, statements  # the statement, then the two reads of `collision`
    assert Booking.objects.filter(machine=machine).count() == 1


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_machine_that_broke_down_after_python_s_first_read_is_not_booked(racing_lab, alice, monkeypatch):
    """On a day the one statement leaves to Python (its own race: a breakdown committed
    while it waits, in test_plain_booking_statement.py)."""
    lab, machine = racing_lab
    real = selectors.booking_context

    def then_it_breaks(**kwargs):  # the status changes between the read and the lock
        context = real(**kwargs)
        Machine.objects.filter(pk=machine.pk).update(status="out_of_order", status_reason="smoke")
        return context

    monkeypatch.setattr(selectors, "booking_context", then_it_breaks)
    start = at(lab, SATURDAY, "10:00")
    with pytest.raises(Conflict, match="out of order: smoke"):
        services.booking_create(machine=machine, member=alice, start=start, end=start + timedelta(hours=1))
    assert not Booking.objects.filter(machine=machine).exists()
    assert Machine.objects.get(pk=machine.pk).timeline_version == 0
