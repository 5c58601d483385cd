"""iCalendar (RFC 5545) feeds of timeline rows, written with the `icalendar` library.

The library escapes TEXT values (backslash, semicolon, comma, and every line break — CRLF,
LF and a bare CR alike — as ``\\n``) and folds lines at 75 octets without splitting a
UTF-8 character. What it leaves to us: TEXT may hold no other control character
(section 3.3.11), so those are dropped before a value reaches it. Times are UTC (`…Z`),
so no VTIMEZONE is needed; every client shows them in its own zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

import icalendar
from django.utils import timezone

from machines.models import Booking

PRODID = "-//fabhub//labs and machines//EN"

# Control characters TEXT cannot carry (all but HTAB; line breaks are normalised first).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def clean_text(text: str) -> str:
    """`text` as a TEXT value may hold it: line breaks as LF, no other control character."""
    return _CONTROL_RE.sub("", _LINE_BREAK_RE.sub("\n", text))


def _event(row: Booking, *, host: str, with_member: bool, now: datetime) -> icalendar.Event:
    machine = row.machine
    if row.kind == Booking.Kind.MAINTENANCE:
        summary = f"{machine.name}: maintenance"
    elif with_member:
        summary = f"{machine.name} ({machine.lab.name})"
    else:
        summary = f"{machine.name}: booked"
    statuses: dict[str, str] = {
        Booking.Status.PENDING: "TENTATIVE",
        Booking.Status.APPROVED: "CONFIRMED",
    }
    description = []
    if with_member and row.note:
        description.append(row.note)
    if row.reason and (with_member or row.kind == Booking.Kind.MAINTENANCE):
        description.append(row.reason)
    if row.status == Booking.Status.PENDING:
        description.append("Waiting for a manager's approval.")
    # A postal address's lines read as one line in a calendar's location field.
    address = ", ".join(line.strip() for line in _LINE_BREAK_RE.split(machine.lab.address) if line.strip())
    location = ", ".join(part for part in (machine.lab.name, address) if part)

    event = icalendar.Event()
    event.add("uid", f"booking-{row.pk}@{host}")
    event.add("dtstamp", now)
    event.add("dtstart", row.start)
    event.add("dtend", row.end)
    event.add("summary", clean_text(summary))
    event.add("location", clean_text(location))
    event.add("status", statuses.get(row.status, "CANCELLED"))
    event.add("transp", "OPAQUE")
    if description:
        event.add("description", clean_text("\n".join(description)))
    return event


def render_feed(rows: Iterable[Booking], *, name: str, host: str, with_member: bool) -> str:
    now = timezone.now()
    calendar = icalendar.Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", PRODID)
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", clean_text(name))
    calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT15M")
    for row in rows:
        calendar.add_component(_event(row, host=host, with_member=with_member, now=now))
    return calendar.to_ical().decode()
