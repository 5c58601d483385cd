"""The machines' timelines: every writer takes the lock, every row goes in through one insert.

Every write to a machine's timeline starts with `timeline_lock`, which serialises the
writers of one machine on every database; PostgreSQL's exclusion constraint
`booking_no_overlap` then has the last word (docs/labs.md). The checks and the wording
that the writers of bookings, closures and maintenance share live here too, below the
modules that use them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
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
    if not Machine.objects.filter(pk=machine_id).update(timeline_version=F("timeline_version") + 1):
        raise NotFound(f"There is no machine {machine_id}.")
    return Machine.objects.select_related("lab").get(pk=machine_id)


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
        if "booking_no_overlap" not in str(exc):
            raise
        row = selectors.collision(machine, fields["start"], fields["end"])
        if row is None:  # pragma: no cover - the constraint saw a row this transaction cannot
            raise Conflict(f"{machine.name} is already booked at that time.") from None
        raise collision_error(machine, row) from None
