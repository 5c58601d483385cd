"""The machines' timelines: every writer takes the lock, every row goes in through one insert.

Every write to a machine's timeline starts with `timeline_lock`, which serialises the
writers of one machine on every database; PostgreSQL's exclusion constraint
`booking_no_overlap` then has the last word (docs/labs.md). The checks and the wording
that the writers of bookings, closures and maintenance share live here too, below the
modules that use them.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import nullcontext
from datetime import datetime
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import F, Field
from django.utils import timezone

from hub.exceptions import Conflict, NotFound, ValidationError
from machines import selectors
from machines.models import Booking, Lab, Machine


def require_aware(**instants: datetime) -> None:
    for name, value in instants.items():
        if timezone.is_naive(value):
            raise ValidationError(
                f"'{name}' has no time zone: give an offset, e.g. 2026-03-28T10:00:00+01:00 or …Z."
            )


def require_range(start: datetime, end: datetime, what: str = "booking") -> None:
    if end == start:
        raise ValidationError(f"The {what} has no length: its end equals its start.")
    if end < start:
        raise ValidationError(f"The {what} ends before it starts: swap start and end.")


def local_time(instant: datetime, lab: Lab) -> str:
    return instant.astimezone(lab.zone).strftime("%a %d %b %Y %H:%M")


def local_span(start: datetime, end: datetime, lab: Lab) -> str:
    local_start, local_end = start.astimezone(lab.zone), end.astimezone(lab.zone)
    if local_start.date() == local_end.date():
        return f"{local_time(start, lab)}–{local_end:%H:%M} ({lab.timezone})"
    return f"{local_time(start, lab)} to {local_time(end, lab)} ({lab.timezone})"


def timeline_lock(machine_id: int) -> Machine:
    """Take the machine's timeline for this transaction; return the machine as it is now.

    The UPDATE is the lock. On PostgreSQL it holds the machine's row until commit, so the
    writers of one machine queue here and each sees the rows its predecessors committed.
    On SQLite it makes the transaction a writer before anything is read (the settings'
    `transaction_mode` IMMEDIATE already does, at BEGIN), and SQLite has one writer at a
    time: the overlap check that follows cannot race.
    """
    timeline_take(machine_id)
    return Machine.objects.select_related("lab").get(pk=machine_id)


def timeline_take(machine_id: int) -> None:
    """`timeline_lock` without reading the machine back: for a caller that reads it next
    anyway (with more, in one query)."""
    if not Machine.objects.filter(pk=machine_id).update(timeline_version=F("timeline_version") + 1):
        raise NotFound(f"There is no machine {machine_id}.")


def timelines_lock(*, lab_id: int, machine_ids: Collection[int] | None = None) -> None:
    """Take the timelines of a lab's machines (or of `machine_ids` among them) for this
    transaction, in id order (two such writers cannot deadlock), and move their versions on.

    For the writers of what a booking's rules read besides the timeline (closures,
    opening hours, qualifications, memberships): a booking racing them either commits
    first, and they see it, or waits and sees their change; `timeline_lock_insert`'s
    version check sends one that read before them back through the lock. The caller is
    in a transaction.
    """
    machines = Machine.objects.filter(lab_id=lab_id)
    if machine_ids is not None:
        machines = machines.filter(pk__in=machine_ids)
    ids = list(machines.order_by("pk").select_for_update().values_list("pk", flat=True))
    if ids:
        Machine.objects.filter(pk__in=ids).update(timeline_version=F("timeline_version") + 1)


def collision_error(machine: Machine, row: Booking) -> Conflict:
    what = "in maintenance" if row.kind == Booking.Kind.MAINTENANCE else "already booked"
    return Conflict(
        f"{machine.name} is {what} {local_span(row.start, row.end, machine.lab)}: choose another slot.",
        collides_with={
            "id": row.pk,
            "kind": row.kind,
            "start": row.start.isoformat(),
            "end": row.end.isoformat(),
        },
    )


def timeline_insert(machine: Machine, **fields: Any) -> Booking:
    """Insert a timeline row; the exclusion constraint's refusal becomes a Conflict."""
    try:
        with transaction.atomic():
            return Booking.objects.create(machine=machine, **fields)
    except IntegrityError as exc:
        raise _refusal(machine, exc, fields["start"], fields["end"]) from None


def _refusal(machine: Machine, exc: IntegrityError, start: datetime, end: datetime) -> Conflict:
    if "booking_no_overlap" not in str(exc):
        raise exc
    row = selectors.collision(machine, start, end)
    if row is None:  # pragma: no cover - the constraint saw a row this transaction cannot
        return Conflict(f"{machine.name} is already booked at that time.")
    return collision_error(machine, row)


@cache
def _lock_insert_sql(vendor: str) -> tuple[str, list[Field]]:
    """`timeline_lock_insert`'s statement, built once from the models."""
    qn = connection.ops.quote_name
    fields = [f for f in Booking._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(qn(str(f.column)) for f in fields)  # concrete fields all have a column
    # Casts: a bare parameter in a SELECT list has no type for PostgreSQL to infer.
    values = ", ".join(f"%s::{f.db_type(connection)}" for f in fields)
    sql = (
        f"WITH locked AS (UPDATE {qn(Machine._meta.db_table)} SET timeline_version = timeline_version "
        f"WHERE id = %s AND status = %s AND timeline_version = %s RETURNING id) "
        f"INSERT INTO {qn(Booking._meta.db_table)} ({columns}) SELECT {values} FROM locked RETURNING id"
    )
    return sql, fields


def timeline_lock_insert(machine: Machine, row: Booking, *, version: int) -> bool:
    """Take the machine's timeline and insert `row` on it, in one statement (PostgreSQL).

    For a write that needs nothing from the timeline but that no row overlaps: the
    exclusion constraint checks that, in the statement that holds the lock. The lock is
    `timeline_lock`'s UPDATE, made a data-modifying CTE, so writers of one machine still
    queue on its row. It is optimistic: it takes the machine only while it is bookable
    and its timeline version is still `version`, the one the caller's checks read (the
    other writers of the timeline, and those of what the checks read, move it on:
    `timeline_lock`, `timelines_lock`). It leaves the version as it is: another such
    insert changes nothing these checks read (the constraint sees the overlap), so
    bookings racing on one machine do not send each other back. Returns False, writing
    nothing, when the status or the version changed: the caller decides again under
    `timeline_lock`. An overlap is refused with the Conflict `timeline_insert` gives.
    Outside a transaction the statement commits itself: the lock is held for that one
    statement.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy looks it up again
    sql, fields = _lock_insert_sql(db.vendor)
    params: list[Any] = [machine.pk, Machine.Status.AVAILABLE.value, version]
    params += [f.get_db_prep_save(f.pre_save(row, add=True), db) for f in fields]
    # Inside a caller's transaction a refusal must not abort it: a savepoint, as
    # `timeline_insert` takes; outside one, the failed statement aborted nothing.
    try:
        with transaction.atomic() if db.in_atomic_block else nullcontext():
            with db.cursor() as cursor:
                cursor.execute(sql, params)
                inserted = cursor.fetchone()
    except IntegrityError as exc:
        raise _refusal(machine, exc, row.start, row.end) from None
    if inserted is None:
        return False
    row.pk = inserted[0]
    row._state.adding = False
    row._state.db = db.alias
    return True
