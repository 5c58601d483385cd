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


def timeline_hold(machine_id: int) -> None:
    """`timeline_take` for a writer that only adds a booking to the timeline: the same
    lock, without moving the version on. A booking changes nothing the rules of a plain
    booking read (the exclusion constraint sees its overlap), so plain bookings that read
    the version before it need not be decided again (`timeline_lock_insert`); a booking
    decided in Python must not send every plain booking racing it the same way. On SQLite
    the UPDATE stays: it makes the transaction the writer before anything is read."""
    if connection.vendor != "postgresql":
        timeline_take(machine_id)
        return
    # Unordered: the model's ordering joins the lab, whose row FOR UPDATE would lock too.
    machine = Machine.objects.filter(pk=machine_id).order_by().select_for_update(no_key=True)
    if not machine.values_list("pk", flat=True):
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
def _lock_insert_sql(where: str) -> tuple[str, list[Field]]:
    """`timeline_lock_insert`'s statement for the condition `where`, built once from the models."""
    qn = connection.ops.quote_name
    machine, lab = qn(Machine._meta.db_table), qn(Lab._meta.db_table)
    fields = [f for f in Booking._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(qn(str(f.column)) for f in fields)  # concrete fields all have a column
    # Casts: a bare parameter in a SELECT list has no type for PostgreSQL to infer.
    values = ", ".join(f"%(value{n})s::{f.db_type(connection)}" for n, f in enumerate(fields))
    # Under READ COMMITTED a row this statement had to wait for is locked, and its
    # conditions checked again, at its newest version, while every other read (the
    # version subquery's, `where`'s) keeps the statement's snapshot: the two versions
    # differ when a writer that moves it on committed in between. `IS TRUE` keeps the
    # condition's subqueries as subplans: pulled up into joins, they took PostgreSQL
    # nearly twice as long to plan (0.56 against 0.31 ms; it plans it on every booking).
    sql = (
        f"WITH locked AS (SELECT m.id FROM {machine} m INNER JOIN {lab} l ON l.id = m.lab_id "
        f"WHERE m.id = %(machine)s AND m.status = %(available)s "
        f"AND m.timeline_version = (SELECT v.timeline_version FROM {machine} v WHERE v.id = %(machine)s) "
        f"AND ({where}) IS TRUE FOR NO KEY UPDATE OF m) "
        f"INSERT INTO {qn(Booking._meta.db_table)} ({columns}) SELECT {values} FROM locked RETURNING id"
    )
    return sql, fields


def timeline_lock_insert(row: Booking, *, where: str, params: dict[str, Any]) -> bool:
    """Insert `row` on its machine's timeline if `where` holds, in one statement (PostgreSQL).

    `where` is a condition on the machine `m` and its lab `l` (the caller's rules, with
    `params`), read in the statement's snapshot. The statement locks the machine's row
    FOR NO KEY UPDATE, so writers of one machine still queue on it as on `timeline_lock`'s
    UPDATE, without writing a new version of the row or moving the timeline version on:
    another such insert changes nothing the rules read (the exclusion constraint refuses
    its overlap), so bookings racing on one machine do not send each other back. It
    writes only while the machine is available and its timeline version is the one the
    snapshot read: the writers of the timeline and of what such rules read move it on
    (`timeline_lock`, `timelines_lock`), so one that committed while this statement
    waited for the row cannot be missed. Returns False, writing nothing, when `where`
    does not hold or the machine changed: the caller decides in Python, under the lock.
    An overlap is refused with the Conflict `timeline_insert` gives. Outside a
    transaction the statement commits itself: the lock is held for that one statement.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy looks it up again
    sql, fields = _lock_insert_sql(where)
    values = {f"value{n}": f.get_db_prep_save(f.pre_save(row, add=True), db) for n, f in enumerate(fields)}
    values.update(params, machine=row.machine_id, available=Machine.Status.AVAILABLE.value)
    # Inside a caller's transaction a refusal must not abort it: a savepoint, as
    # `timeline_insert` takes; outside one, the failed statement aborted nothing.
    try:
        with transaction.atomic() if db.in_atomic_block else nullcontext():
            with db.cursor() as cursor:
                cursor.execute(sql, values)
                inserted = cursor.fetchone()
    except IntegrityError as exc:
        raise _refusal(row.machine, exc, row.start, row.end) from None
    if inserted is None:
        return False
    row.pk = inserted[0]
    row._state.adding = False
    row._state.db = db.alias
    return True
