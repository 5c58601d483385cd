"""iCalendar (RFC 5545) feeds of timeline rows: written by hand, checked in tests with the
`icalendar` parser. Times are UTC (`…Z`), so no VTIMEZONE is needed; every client shows
them in its own zone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from django.utils import timezone

from machines.models import Booking

PRODID = "-//fabhub//labs and machines//EN"


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines of at most 75 octets, continued with CRLF + space (section 3.1), never
    splitting a UTF-8 character."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts, start, limit = [], 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        parts.append(data[start:end].decode())
        start, limit = end, 74  # continuation lines start with a space
    return "\r\n ".join(parts)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _event(row: Booking, *, host: str, with_member: bool, now: datetime) -> list[str]:
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
    status = statuses.get(row.status, "CANCELLED")
    description = []
    if with_member and row.note:
        description.append(row.note)
    if row.reason and (with_member or row.kind == Booking.Kind.MAINTENANCE):
        description.append(row.reason)
    if row.status == Booking.Status.PENDING:
        description.append("Waiting for a manager's approval.")
    lines = [
        "BEGIN:VEVENT",
        f"UID:booking-{row.pk}@{host}",
        f"DTSTAMP:{_stamp(now)}",
        f"DTSTART:{_stamp(row.start)}",
        f"DTEND:{_stamp(row.end)}",
        f"SUMMARY:{_escape(summary)}",
        f"LOCATION:{_escape(', '.join(p for p in (machine.lab.name, machine.lab.address.replace(chr(10), ', ')) if p))}",
        f"STATUS:{status}",
        "TRANSP:OPAQUE",
    ]
    if description:
        lines.append(f"DESCRIPTION:{_escape(chr(10).join(description))}")
    lines.append("END:VEVENT")
    return lines


def render_feed(rows: Iterable[Booking], *, name: str, host: str, with_member: bool) -> str:
    now = timezone.now()
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(name)}",
        "REFRESH-INTERVAL;VALUE=DURATION:PT15M",
        "X-PUBLISHED-TTL:PT15M",
    ]
    for row in rows:
        lines.extend(_event(row, host=host, with_member=with_member, now=now))
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)
