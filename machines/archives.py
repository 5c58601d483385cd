"""The machines part of an account archive (hub.archives, docs/portability.md): a person's
bookings, print records, lab memberships and qualifications under `machines/`.

Exported as JSON with the names copied (lab, machine, design), so they mean the same on a
hub that has none of those rows. Imported as read-only history (bookings and prints):
another hub's machines and labs are not this hub's, so nothing here is booked or
recorded again. Memberships and qualifications are not imported: a lab here decides its
own members, and a qualification's signed record travels in `records/credentials.json`.
Registered in `MachinesConfig.ready()`.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from hub import records
from hub.archives import ArchivePart, ArchiveRefused, ExportContext, ImportContext, register_archive_part
from hub.models import ImportedRecord
from machines.models import Booking, Lab, LabMembership, PrintRecord, Qualification

BOOKINGS = "machines/bookings.json"
PRINTS = "machines/prints.json"
MEMBERSHIPS = "machines/memberships.json"
QUALIFICATIONS = "machines/qualifications.json"

BOOKING_FIELDS = ("lab", "lab_url", "machine", "start", "end", "status", "note")
PRINT_FIELDS = (
    "lab",
    "lab_url",
    "machine",
    "design",
    "path",
    "commit",
    "gcode_sha256",
    "result",
    "started",
    "ended",
)
# A value of history is a short text or a number; anything else in an archive is dropped.
MAX_TEXT = 4096


def lab_url(lab: Lab) -> str:
    return records.hub_root() + reverse("lab-detail", args=[lab.slug]).lstrip("/")


def _instant(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def export_machines(ctx: ExportContext) -> None:
    user = ctx.user
    ctx.progress("Bookings")
    bookings = (
        Booking.objects.filter(member=user, kind=Booking.Kind.BOOKING)
        .select_related("machine__lab")
        .order_by("start", "pk")
    )
    ctx.writer.add_json(
        BOOKINGS,
        [
            {
                "id": booking.pk,
                "lab": booking.machine.lab.name,
                "lab_url": lab_url(booking.machine.lab),
                "machine": booking.machine.name,
                "start": _instant(booking.start),
                "end": _instant(booking.end),
                "status": booking.status,
                "note": booking.note,
            }
            for booking in bookings.iterator(chunk_size=1000)
        ],
    )
    ctx.progress("Print records")
    prints = PrintRecord.objects.filter(owner=user).select_related("lab").order_by("ended_at", "pk")
    ctx.writer.add_json(
        PRINTS,
        [
            {
                "id": record.pk,
                "lab": record.lab.name,
                "lab_url": lab_url(record.lab),
                "machine": record.machine_name,
                "design": record.design_name,
                "path": record.path,
                "commit": record.commit_sha,
                "gcode_sha256": record.gcode_sha,
                "material": record.material,
                "copy": record.copy,
                "result": record.result,
                "reason": record.reason,
                "started": _instant(record.started_at),
                "ended": _instant(record.ended_at),
            }
            for record in prints.iterator(chunk_size=1000)
        ],
    )
    memberships = LabMembership.objects.filter(user=user).select_related("lab").order_by("created_at", "pk")
    ctx.writer.add_json(
        MEMBERSHIPS,
        [
            {
                "lab": membership.lab.name,
                "lab_url": lab_url(membership.lab),
                "role": membership.role,
                "status": membership.status,
                "since": _instant(membership.created_at),
            }
            for membership in memberships
        ],
    )
    qualifications = (
        Qualification.objects.filter(member=user)
        .select_related("lab", "machine")
        .order_by("trained_on", "pk")
    )
    ctx.writer.add_json(
        QUALIFICATIONS,
        [
            {
                "id": qualification.pk,
                "lab": qualification.lab.name,
                "lab_url": lab_url(qualification.lab),
                "machine": qualification.machine.name if qualification.machine else None,
                "kind": qualification.kind or None,
                "trained_on": qualification.trained_on.isoformat(),
                "expires_on": qualification.expires_on.isoformat() if qualification.expires_on else None,
            }
            for qualification in qualifications
        ],
    )


def _plain(value: Any) -> str | int | float | bool | None:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return None


def _entries(ctx: ImportContext, name: str) -> list[dict[str, Any]]:
    if name not in ctx.reader.sizes:
        return []
    entries = ctx.reader.read_json(name)
    if not isinstance(entries, list):
        raise ArchiveRefused(f"{name} must be a list.", file=name)
    kept = [
        entry for entry in entries if isinstance(entry, dict) and _plain(entry.get("id")) not in (None, "")
    ]
    if len(kept) < len(entries):
        ctx.note(f"{len(entries) - len(kept)} entries of {name} without an id were left out.")
    return kept


def _keep(ctx: ImportContext, name: str, kind: str, fields: tuple[str, ...], counted: str) -> None:
    for entry in _entries(ctx, name):
        data = {key: _plain(entry.get(key)) for key in fields}
        if ctx.keep_history(kind, str(entry["id"])[:200], data):
            ctx.count(counted)


def import_machines(ctx: ImportContext) -> None:
    ctx.progress("Bookings")
    _keep(ctx, BOOKINGS, ImportedRecord.Kind.BOOKING, BOOKING_FIELDS, "bookings")
    ctx.progress("Print records")
    _keep(ctx, PRINTS, ImportedRecord.Kind.PRINT, PRINT_FIELDS, "prints")
    for name, what in ((MEMBERSHIPS, "lab membership"), (QUALIFICATIONS, "qualification")):
        if name in ctx.reader.sizes:
            listed = ctx.reader.read_json(name)
            count = len(listed) if isinstance(listed, list) else 0
            if count:
                ctx.note(
                    f"{count} {what}{'s' if count != 1 else ''} of the other hub not carried over: "
                    "labs here decide their own members and training"
                    + (" (their signed records are with your records)." if what == "qualification" else ".")
                )


def register() -> None:
    register_archive_part(ArchivePart(name="machines", export=export_machines, import_=import_machines))
