"""Machines: create, edit, connection settings, status (maintenance, out of order)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from hub.exceptions import Conflict, ValidationError
from hub.models import User
from machines import secrets
from machines.models import Booking, Lab, Machine
from machines.notifications import notify
from machines.selectors import require_approved, require_manager
from machines.services.labs import flag_affected, full_clean
from machines.services.timeline import local_span, timeline_lock, timeline_take

logger = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 5 * 1024 * 1024
PHOTO_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg", b"GIF87a": "gif", b"GIF89a": "gif"}


MACHINE_FIELDS = (
    "name", "kind", "model_name", "work_x_mm", "work_y_mm", "work_z_mm", "capabilities", "notes",
    "requires_qualification", "price_per_hour", *Lab.RULE_FIELDS,
)  # fmt: skip


# The protocols a printer the hub drives directly may speak (machines/printing/drivers/).
CONNECTION_PROTOCOLS = ("octoprint", "moonraker", "prusalink")


def _set_connection(
    machine: Machine, url: str | None, api_key: str | None, protocol: str | None = None
) -> None:
    """Write-only connection settings: set both, or clear them with an empty URL."""
    if url is None and api_key is None:
        return
    if not url:
        machine.connection_secret = ""
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("The connection URL must be an http:// or https:// address.")
    protocol = protocol or "octoprint"
    if protocol not in CONNECTION_PROTOCOLS:
        raise ValidationError(f"The protocol must be one of: {', '.join(CONNECTION_PROTOCOLS)}.")
    # Moonraker may trust the hub's address instead of asking for a key.
    if not api_key and protocol != "moonraker":
        raise ValidationError("Give the API key together with the connection URL.")
    if machine.agent_id is not None:
        raise ValidationError(
            "This machine is driven by a lab agent: the hub keeps no address or key for it."
        )
    machine.connection_secret = secrets.encrypt({"driver": protocol, "url": url, "api_key": api_key or ""})


def _set_photo(machine: Machine, photo) -> None:
    if photo is None:
        return
    if not photo:
        machine.photo = ""
        return
    if photo.size > MAX_PHOTO_BYTES:
        raise ValidationError(f"The photo is over {MAX_PHOTO_BYTES // (1024 * 1024)} MB.")
    head = photo.read(16)
    photo.seek(0)
    extension = next((ext for sig, ext in PHOTO_SIGNATURES.items() if head.startswith(sig)), None)
    if extension is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        extension = "webp"
    if extension is None:
        raise ValidationError("The photo must be a PNG, JPEG, GIF or WebP image.")
    machine.photo.save(f"{machine.lab.slug}-{machine.slug}.{extension}", photo, save=False)


@transaction.atomic
def machine_create(
    *,
    lab: Lab,
    actor: User,
    name: str,
    slug: str,
    kind: str,
    connection_url: str | None = None,
    connection_api_key: str | None = None,
    connection_protocol: str | None = None,
    photo=None,
    **fields: Any,
) -> Machine:
    require_manager(lab, actor)
    require_approved(lab)
    unknown = set(fields) - set(MACHINE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown machine fields: {', '.join(sorted(unknown))}.")
    machine = Machine(lab=lab, name=name, slug=slug, kind=kind, **fields)
    full_clean(machine, exclude=["photo"])
    if Machine.objects.filter(lab=lab, slug=slug).exists():
        raise Conflict(f"{lab.name} already has a machine named {slug!r}.")
    _set_connection(machine, connection_url, connection_api_key, connection_protocol)
    _set_photo(machine, photo)
    machine.save()
    return machine


@transaction.atomic
def machine_update(
    *,
    machine: Machine,
    actor: User,
    connection_url: str | None = None,
    connection_api_key: str | None = None,
    connection_protocol: str | None = None,
    photo=None,
    **fields: Any,
) -> Machine:
    """Change a machine's settings. Only the fields given are written: `machine` may be
    older than its row (a form read it), and its status or timeline must not go back.

    Under the machine's timeline lock, which moves its version on: the fields include
    booking rules (qualification, lengths, notice, quota, approval), so a booking racing
    the change either commits first or is decided by the new rules."""
    require_manager(machine.lab, actor)
    unknown = set(fields) - set(MACHINE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown machine fields: {', '.join(sorted(unknown))}.")
    timeline_take(machine.pk)
    for name, value in fields.items():
        setattr(machine, name, value)
    full_clean(machine, exclude=["photo", "slug"])
    written = list(fields)
    if connection_url is not None or connection_api_key is not None:
        _set_connection(machine, connection_url, connection_api_key, connection_protocol)
        written.append("connection_secret")
    if photo is not None:
        _set_photo(machine, photo)
        written.append("photo")
    if written:
        machine.save(update_fields=written)
    return machine


def machine_connection(machine: Machine) -> dict[str, Any] | None:
    """The decrypted connection settings, for drivers only; None if none are stored or
    they can no longer be read (the key changed: a manager must enter them again)."""
    if not machine.connection_secret:
        return None
    try:
        return secrets.decrypt(machine.connection_secret)
    except secrets.UnreadableSecret:
        logger.warning("connection settings of machine %s are unreadable with the current key", machine.pk)
        return None


@transaction.atomic
def machine_set_status(*, machine: Machine, actor: User, status: str, reason: str = "") -> list[Booking]:
    """Put a machine in maintenance, out of order or back in service.

    Future bookings it breaks are flagged `needs_decision` and their members told; a
    manager then cancels or keeps each one. Back in service, the flags go and the
    members whose bookings were flagged hear that their booking stands. Returns the
    bookings flagged (or un-flagged).
    """
    require_manager(machine.lab, actor)
    if status not in Machine.Status.values:
        raise ValidationError(f"{status!r} is not a status: use {', '.join(Machine.Status.values)}.")
    if status != Machine.Status.AVAILABLE and not reason.strip():
        raise ValidationError("Say why the machine is unavailable: its members are told.")
    machine = timeline_lock(machine.pk)
    lab = machine.lab
    now = timezone.now()
    Machine.objects.filter(pk=machine.pk).update(
        status=status,
        status_reason=reason if status != Machine.Status.AVAILABLE else "",
        status_changed_at=now,
    )
    machine.refresh_from_db()
    future = Booking.objects.filter(
        machine=machine, kind=Booking.Kind.BOOKING, status__in=Booking.ACTIVE, end__gt=now
    ).select_related("member")
    if status == Machine.Status.AVAILABLE:
        rows = list(future.filter(needs_decision=True))
        future.filter(needs_decision=True).update(needs_decision=False)
        for row in rows:
            notify(
                user=row.booking_member,
                lab=lab,
                booking=row,
                subject=f"{machine.name} is back in service: your booking {local_span(row.start, row.end, lab)} stands",
            )
        return rows
    label = machine.get_status_display().lower()
    return flag_affected(
        list(future), lab, subject=f"{machine.name} is {label}", body=f"{machine.name} is {label}: {reason}"
    )
