"""Writes for labs, machines, qualifications and bookings. Each checks its caller's rights.

Every write to a machine's timeline starts with `timeline_lock`, which serialises the
writers of one machine on every database; PostgreSQL's exclusion constraint
`booking_no_overlap` then has the last word (docs/labs.md).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from hub.models import User
from machines import secrets, selectors, timeline
from machines.models import (
    Booking,
    CalendarFeed,
    Closure,
    Lab,
    LabMembership,
    Machine,
    OpeningHours,
    Qualification,
    new_feed_token,
)
from machines.notifications import notify, notify_managers
from machines.selectors import lab_role, require_manager, require_member, rules_for

logger = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 5 * 1024 * 1024
PHOTO_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg", b"GIF87a": "gif", b"GIF89a": "gif"}


# -- helpers ---------------------------------------------------------------------------------


def _require_aware(**instants: datetime) -> None:
    for name, value in instants.items():
        if timezone.is_naive(value):
            raise ValidationError(
                f"'{name}' has no time zone: give an offset, e.g. 2026-03-28T10:00:00+01:00 or …Z."
            )


def _require_range(start: datetime, end: datetime, what: str = "booking") -> None:
    if end == start:
        raise ValidationError(f"The {what} has no length: its end equals its start.")
    if end < start:
        raise ValidationError(f"The {what} ends before it starts: swap start and end.")


def _local(instant: datetime, lab: Lab) -> str:
    return instant.astimezone(lab.zone).strftime("%a %d %b %Y %H:%M")


def _span(start: datetime, end: datetime, lab: Lab) -> str:
    local_start, local_end = start.astimezone(lab.zone), end.astimezone(lab.zone)
    if local_start.date() == local_end.date():
        return f"{_local(start, lab)}–{local_end:%H:%M} ({lab.timezone})"
    return f"{_local(start, lab)} to {_local(end, lab)} ({lab.timezone})"


def _full_clean(instance, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude, validate_constraints=False)
    except DjangoValidationError as exc:
        messages = [
            f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            for field, errors in exc.message_dict.items()
        ]
        raise ValidationError(" ".join(messages), fields=exc.message_dict) from None


# -- the machines' timelines: every writer takes the lock, every row goes in through one insert --


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


def _collision_error(machine: Machine, row: Booking) -> Conflict:
    what = "in maintenance" if row.kind == Booking.Kind.MAINTENANCE else "already booked"
    return Conflict(
        f"{machine.name} is {what} {_span(row.start, row.end, machine.lab)}: choose another slot.",
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
        raise _collision_error(machine, row) from None


# -- labs and members --------------------------------------------------------------------------

LAB_FIELDS = ("name", "address", "timezone", "description", "join_policy", *Lab.RULE_FIELDS)


@transaction.atomic
def lab_create(*, creator: User, name: str, slug: str, timezone: str = "UTC", **fields: Any) -> Lab:
    """Create a lab; its creator is its first manager."""
    unknown = set(fields) - set(LAB_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown lab fields: {', '.join(sorted(unknown))}.")
    values = {**Lab.DEFAULT_RULES, **{k: v for k, v in fields.items() if v is not None}}
    lab = Lab(name=name, slug=slug, timezone=timezone, **values)
    _full_clean(lab)
    if Lab.objects.filter(slug=slug).exists():
        raise Conflict(f"A lab named {slug!r} exists already.")
    lab.save()
    LabMembership.objects.create(lab=lab, user=creator, role=LabMembership.Role.MANAGER)
    return lab


@transaction.atomic
def lab_update(*, lab: Lab, actor: User, **fields: Any) -> Lab:
    require_manager(lab, actor)
    unknown = set(fields) - set(LAB_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown lab fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        if value is None and name in Lab.RULE_FIELDS and name != "weekly_quota_minutes":
            value = Lab.DEFAULT_RULES[name]
        setattr(lab, name, value)
    _full_clean(lab, exclude=["slug"])
    lab.save()
    return lab


@transaction.atomic
def lab_set_hours(*, lab: Lab, actor: User, hours: list[tuple[int, time, time]]) -> list[OpeningHours]:
    """Replace the lab's weekly opening hours (weekday 0 = Monday; closes 00:00 = midnight)."""
    require_manager(lab, actor)
    by_day: dict[int, list[tuple[time, time]]] = {}
    for weekday, opens, closes in hours:
        if not 0 <= weekday <= 6:
            raise ValidationError(f"Weekday {weekday} does not exist: use 0 (Monday) to 6 (Sunday).")
        if closes != time(0) and closes <= opens:
            raise ValidationError(
                f"On day {weekday} the lab closes ({closes:%H:%M}) before it opens ({opens:%H:%M})."
            )
        by_day.setdefault(weekday, []).append((opens, closes))
    for weekday, spans in by_day.items():
        spans.sort()
        for (_, closes), (next_opens, _) in zip(spans, spans[1:], strict=False):
            if closes == time(0) or closes > next_opens:
                raise ValidationError(f"Opening hours of day {weekday} overlap.")
    lab.opening_hours.all().delete()
    return OpeningHours.objects.bulk_create(
        [
            OpeningHours(lab=lab, weekday=d, opens=o, closes=c)
            for d, spans in sorted(by_day.items())
            for o, c in spans
        ]
    )


def _flag_affected(rows: list[Booking], lab: Lab, *, subject: str, body: str) -> list[Booking]:
    """Mark future bookings a manager must decide on, and tell their members."""
    flagged = [r for r in rows if r.kind == Booking.Kind.BOOKING]
    Booking.objects.filter(pk__in=[r.pk for r in flagged]).update(needs_decision=True)
    for row in flagged:
        row.needs_decision = True
        notify(
            user=row.booking_member,
            lab=lab,
            booking=row,
            subject=f"{subject}: your booking {_span(row.start, row.end, lab)}",
            body=f"{body}\nThe lab's managers will decide whether your booking is cancelled or kept.",
        )
    return flagged


@transaction.atomic
def closure_create(
    *, lab: Lab, actor: User, start: datetime, end: datetime, reason: str = ""
) -> tuple[Closure, list[Booking]]:
    """Close the lab over [start, end). Bookings already there are flagged for a decision."""
    require_manager(lab, actor)
    _require_aware(start=start, end=end)
    _require_range(start, end, "closure")
    closure = Closure.objects.create(lab=lab, start=start, end=end, reason=reason)
    rows = list(
        Booking.objects.filter(
            machine__lab=lab, status__in=Booking.ACTIVE, start__lt=end, end__gt=max(start, timezone.now())
        ).select_related("member")
    )
    flagged = _flag_affected(
        rows,
        lab,
        subject=f"{lab.name} will be closed",
        body=f"{lab.name} is closed {_span(start, end, lab)}{': ' + reason if reason else ''}.",
    )
    return closure, flagged


def closure_delete(*, closure: Closure, actor: User) -> None:
    require_manager(closure.lab, actor)
    closure.delete()


@transaction.atomic
def membership_join(*, lab: Lab, user: User) -> LabMembership:
    """Join an open lab, or ask to join one whose managers approve members."""
    membership, created = LabMembership.objects.get_or_create(
        lab=lab,
        user=user,
        defaults={
            "status": LabMembership.Status.ACTIVE
            if lab.join_policy == Lab.JoinPolicy.OPEN
            else LabMembership.Status.PENDING
        },
    )
    if created and membership.status == LabMembership.Status.PENDING:
        notify_managers(lab, subject=f"{user.username} asks to join {lab.name}")
    return membership


def _membership(lab: Lab, user: User) -> LabMembership:
    membership = LabMembership.objects.filter(lab=lab, user=user).first()
    if membership is None:
        raise NotFound(f"{user.username} is not a member of {lab.name}.")
    return membership


@transaction.atomic
def membership_decide(*, lab: Lab, actor: User, user: User, approve: bool) -> LabMembership | None:
    require_manager(lab, actor)
    pending = LabMembership.objects.filter(lab=lab, user=user, status=LabMembership.Status.PENDING)
    if approve:
        if not pending.update(status=LabMembership.Status.ACTIVE, decided_by=actor):
            raise Conflict(f"{user.username} has no pending request to join {lab.name}.")
        notify(
            user=user, lab=lab, subject=f"Welcome to {lab.name}", body="Your request to join was approved."
        )
        return _membership(lab, user)
    if not pending.delete()[0]:
        raise Conflict(f"{user.username} has no pending request to join {lab.name}.")
    notify(user=user, lab=lab, subject=f"Your request to join {lab.name} was declined")
    return None


def _other_managers(lab: Lab, user: User) -> bool:
    return (
        LabMembership.objects.filter(
            lab=lab, role=LabMembership.Role.MANAGER, status=LabMembership.Status.ACTIVE
        )
        .exclude(user=user)
        .exists()
    )


@transaction.atomic
def membership_set_role(*, lab: Lab, actor: User, user: User, role: str) -> LabMembership:
    require_manager(lab, actor)
    membership = _membership(lab, user)
    if membership.status != LabMembership.Status.ACTIVE:
        raise ValidationError(f"Approve {user.username}'s request to join first.")
    if role not in LabMembership.Role.values:
        raise ValidationError(f"{role!r} is not a role: use 'member' or 'manager'.")
    if role == LabMembership.Role.MEMBER and not _other_managers(lab, user):
        raise ValidationError(f"{lab.name} needs at least one manager.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, lab: Lab, actor: User, user: User) -> None:
    """Leave a lab (oneself) or remove a member (a manager). Their future bookings go."""
    if actor.pk != user.pk:
        require_manager(lab, actor)
    membership = _membership(lab, user)
    if membership.role == LabMembership.Role.MANAGER and not _other_managers(lab, user):
        raise ValidationError(f"{lab.name} needs at least one manager: name another one first.")
    membership.delete()
    Booking.objects.filter(
        member=user, machine__lab=lab, status__in=Booking.ACTIVE, start__gt=timezone.now()
    ).update(status=Booking.Status.CANCELLED, reason=f"{user.username} left {lab.name}.")


# -- machines ----------------------------------------------------------------------------------

MACHINE_FIELDS = (
    "name", "kind", "model_name", "work_x_mm", "work_y_mm", "work_z_mm", "capabilities", "notes",
    "requires_qualification", *Lab.RULE_FIELDS,
)  # fmt: skip


def _set_connection(machine: Machine, url: str | None, api_key: str | None) -> None:
    """Write-only connection settings: set both, or clear them with an empty URL."""
    if url is None and api_key is None:
        return
    if not url:
        machine.connection_secret = ""
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("The connection URL must be an http:// or https:// address.")
    if not api_key:
        raise ValidationError("Give the API key together with the connection URL.")
    machine.connection_secret = secrets.encrypt({"driver": "octoprint", "url": url, "api_key": api_key})


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
    photo=None,
    **fields: Any,
) -> Machine:
    require_manager(lab, actor)
    unknown = set(fields) - set(MACHINE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown machine fields: {', '.join(sorted(unknown))}.")
    machine = Machine(lab=lab, name=name, slug=slug, kind=kind, **fields)
    _full_clean(machine, exclude=["photo"])
    if Machine.objects.filter(lab=lab, slug=slug).exists():
        raise Conflict(f"{lab.name} already has a machine named {slug!r}.")
    _set_connection(machine, connection_url, connection_api_key)
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
    photo=None,
    **fields: Any,
) -> Machine:
    require_manager(machine.lab, actor)
    unknown = set(fields) - set(MACHINE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown machine fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(machine, name, value)
    _full_clean(machine, exclude=["photo", "slug"])
    _set_connection(machine, connection_url, connection_api_key)
    _set_photo(machine, photo)
    machine.save()
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
                subject=f"{machine.name} is back in service: your booking {_span(row.start, row.end, lab)} stands",
            )
        return rows
    label = machine.get_status_display().lower()
    return _flag_affected(
        list(future), lab, subject=f"{machine.name} is {label}", body=f"{machine.name} is {label}: {reason}"
    )


# -- qualifications ----------------------------------------------------------------------------


@transaction.atomic
def qualification_record(
    *,
    lab: Lab,
    actor: User,
    member: User,
    trained_on,
    machine: Machine | None = None,
    kind: str = "",
    trainer: User | None = None,
    expires_on=None,
) -> Qualification:
    require_manager(lab, actor)
    if lab_role(lab, member) not in ("member", "manager"):
        raise ValidationError(f"{member.username} is not a member of {lab.name}.")
    if (machine is None) == (not kind):
        raise ValidationError("Give either a machine or a kind of machine, not both.")
    if machine is not None and machine.lab_id != lab.pk:
        raise ValidationError(f"{machine.name} is not a machine of {lab.name}.")
    if kind and kind not in Machine.Kind.values:
        raise ValidationError(f"{kind!r} is not a kind of machine.")
    if expires_on is not None and expires_on < trained_on:
        raise ValidationError("The qualification expires before the training date.")
    return Qualification.objects.create(
        lab=lab,
        member=member,
        machine=machine,
        kind=kind,
        trained_on=trained_on,
        trainer=trainer or actor,
        expires_on=expires_on,
        recorded_by=actor,
    )


def qualification_revoke(*, qualification: Qualification, actor: User) -> None:
    require_manager(qualification.lab, actor)
    qualification.delete()


def _require_qualified(member: User, machine: Machine, start: datetime) -> None:
    if not machine.requires_qualification:
        return
    lab = machine.lab
    today = timezone.now().astimezone(lab.zone).date()
    on_start = start.astimezone(lab.zone).date()
    if selectors.qualification_for(member, machine, today) is None:
        raise PermissionDenied(
            f"{machine.name} needs a training: ask a manager of {lab.name} to record your qualification."
        )
    if selectors.qualification_for(member, machine, on_start) is None:
        raise PermissionDenied(f"Your qualification for {machine.name} expires before {on_start:%d %b %Y}.")


# -- bookings ----------------------------------------------------------------------------------


def _check_rules(machine: Machine, member: User, start: datetime, end: datetime, now: datetime) -> None:
    rules = rules_for(machine)
    lab = machine.lab
    length = (end - start).total_seconds() / 60
    if length < rules.min_booking_minutes:
        raise ValidationError(f"Book {machine.name} for at least {rules.min_booking_minutes} minutes.")
    if length > rules.max_booking_minutes:
        raise ValidationError(
            f"Book {machine.name} for at most {rules.max_booking_minutes} minutes at a time."
        )
    if start < now + timedelta(minutes=rules.min_notice_minutes):
        if start < now:
            raise ValidationError("That time has passed.")
        raise ValidationError(f"Book {machine.name} at least {rules.min_notice_minutes} minutes ahead.")
    if start > now + timedelta(days=rules.max_horizon_days):
        raise ValidationError(f"Book {machine.name} at most {rules.max_horizon_days} days ahead.")
    closures = selectors.closures_between(lab, start, end)
    if closures:
        first = closures[0]
        why = f": {first.reason}" if first.reason else ""
        raise ValidationError(f"{lab.name} is closed {_span(first.start, first.end, lab)}{why}.")
    hours = timeline.opening_intervals(selectors.weekly_hours(lab), lab.zone, start, end)
    if not timeline.contains(hours, start, end):
        raise ValidationError(
            f"{_span(start, end, lab)} is outside {lab.name}'s opening hours: see the lab's page."
        )


def _check_quota(machine: Machine, member: User, start: datetime, end: datetime) -> None:
    rules = rules_for(machine)
    if rules.weekly_quota_minutes is None:
        return
    zone = machine.lab.zone
    monday = timeline.week_start(start, zone)
    while True:
        week_from = timeline.wall_clock(monday, time(0), zone)
        week_to = timeline.wall_clock(monday + timedelta(days=7), time(0), zone)
        if week_from >= end:
            return
        new = sum(timeline.minutes(i) for i in timeline.clip([(start, end)], week_from, week_to))
        used = selectors.booked_minutes(
            member, machine, week_from, week_to, per_machine=rules.quota_per_machine
        )
        if used + new > rules.weekly_quota_minutes:
            where = machine.name if rules.quota_per_machine else machine.lab.name
            raise ValidationError(
                f"This booking would take you over your weekly quota of {rules.weekly_quota_minutes / 60:g} h "
                f"at {where} (week of {monday:%d %b}: {used / 60:g} h booked already)."
            )
        monday += timedelta(days=7)


def booking_create(
    *,
    machine: Machine,
    member: User,
    start: datetime,
    end: datetime,
    note: str = "",
    lab: Lab | None = None,
) -> Booking:
    """Book `machine` for `member` over [start, end).

    `lab` is the lab the caller believes the machine is in (an API payload's lab): a
    mismatch is refused rather than trusted. Everything that depends on the timeline is
    checked after `timeline_lock`, so two requests for one slot cannot both pass.
    """
    _require_aware(start=start, end=end)
    _require_range(start, end)
    if lab is not None and lab.pk != machine.lab_id:
        raise ValidationError(f"{machine.name} is a machine of {machine.lab.name}, not of {lab.name}.")
    require_member(machine.lab, member)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    with transaction.atomic():
        machine = timeline_lock(machine.pk)
        if not machine.is_bookable:
            raise Conflict(
                f"{machine.name} is {machine.get_status_display().lower()}"
                f"{': ' + machine.status_reason if machine.status_reason else ''}. Try another machine."
            )
        now = timezone.now()
        _check_rules(machine, member, start, end, now)
        _require_qualified(member, machine, start)
        _check_quota(machine, member, start, end)
        row = selectors.collision(machine, start, end)
        if row is not None:
            raise _collision_error(machine, row)
        needs_approval = rules_for(machine).requires_approval and lab_role(machine.lab, member) != "manager"
        booking = timeline_insert(
            machine,
            kind=Booking.Kind.BOOKING,
            member=member,
            created_by=member,
            start=start,
            end=end,
            note=note,
            status=Booking.Status.PENDING if needs_approval else Booking.Status.APPROVED,
        )
        if needs_approval:
            notify_managers(
                machine.lab,
                booking=booking,
                but=member,
                subject=f"{member.username} asks for {machine.name} {_span(start, end, machine.lab)}",
            )
    return booking


def _manager_of(booking: Booking, actor: User) -> bool:
    return lab_role(booking.machine.lab, actor) == "manager"


def _claim(booking: Booking, from_status: tuple[str, ...], error: str, **changes: Any) -> Booking:
    if not Booking.objects.filter(pk=booking.pk, status__in=from_status).update(**changes):
        raise Conflict(error)
    booking.refresh_from_db()
    return booking


@transaction.atomic
def booking_approve(*, booking: Booking, actor: User) -> Booking:
    require_manager(booking.machine.lab, actor)
    booking = _claim(
        booking,
        (Booking.Status.PENDING,),
        "This booking is no longer waiting for approval.",
        status=Booking.Status.APPROVED,
        decided_by=actor,
        decided_at=timezone.now(),
    )
    lab = booking.machine.lab
    notify(
        user=booking.booking_member,
        lab=lab,
        booking=booking,
        subject=f"Confirmed: {booking.machine.name} {_span(booking.start, booking.end, lab)}",
    )
    return booking


@transaction.atomic
def booking_refuse(*, booking: Booking, actor: User, reason: str) -> Booking:
    require_manager(booking.machine.lab, actor)
    if not reason.strip():
        raise ValidationError("Say why the booking is refused: the member is told.")
    booking = _claim(
        booking,
        (Booking.Status.PENDING,),
        "This booking is no longer waiting for approval.",
        status=Booking.Status.REFUSED,
        reason=reason,
        decided_by=actor,
        decided_at=timezone.now(),
    )
    lab = booking.machine.lab
    notify(
        user=booking.booking_member,
        lab=lab,
        booking=booking,
        body=reason,
        subject=f"Refused: {booking.machine.name} {_span(booking.start, booking.end, lab)}",
    )
    return booking


@transaction.atomic
def booking_cancel(*, booking: Booking, actor: User, reason: str = "") -> Booking:
    """Cancel: the member up to the lab's deadline, a manager at any time with a reason."""
    lab = booking.machine.lab
    manager = _manager_of(booking, actor)
    now = timezone.now()
    if booking.member_id == actor.pk and not manager:
        if booking.end <= now:
            raise ValidationError("This booking is over.")
        deadline = booking.start - timedelta(minutes=rules_for(booking.machine).cancel_deadline_minutes)
        if now > deadline:
            raise ValidationError(
                f"Bookings of {booking.machine.name} can be cancelled until {_local(deadline, lab)}; ask a manager."
            )
    elif not manager:
        raise NotFound(f"There is no booking {booking.pk}.")
    elif booking.member_id != actor.pk and not reason.strip():
        raise ValidationError("Say why you cancel this booking: the member is told.")
    booking = _claim(
        booking,
        Booking.ACTIVE,
        "This booking is not active any more.",
        status=Booking.Status.CANCELLED,
        reason=reason,
        decided_by=actor,
        decided_at=now,
        needs_decision=False,
    )
    if booking.member_id and booking.member_id != actor.pk:
        notify(
            user=booking.booking_member,
            lab=lab,
            booking=booking,
            body=reason,
            subject=f"Cancelled: {booking.machine.name} {_span(booking.start, booking.end, lab)}",
        )
    return booking


@transaction.atomic
def booking_keep(*, booking: Booking, actor: User) -> Booking:
    """A manager's decision to keep a booking that a status change or closure flagged."""
    require_manager(booking.machine.lab, actor)
    if not Booking.objects.filter(pk=booking.pk, needs_decision=True, status__in=Booking.ACTIVE).update(
        needs_decision=False, decided_by=actor, decided_at=timezone.now()
    ):
        raise Conflict("This booking is not waiting for a decision.")
    booking.refresh_from_db()
    lab = booking.machine.lab
    notify(
        user=booking.booking_member,
        lab=lab,
        booking=booking,
        subject=f"Kept: your booking of {booking.machine.name} {_span(booking.start, booking.end, lab)} stands",
    )
    return booking


def maintenance_block(
    *,
    machine: Machine,
    actor: User,
    start: datetime,
    end: datetime,
    reason: str,
    cancel_overlapping: bool = False,
) -> tuple[Booking, list[Booking]]:
    """Block a maintenance window on the machine's timeline.

    Bookings in the way are refused with a Conflict that lists them, unless
    `cancel_overlapping`: then they are cancelled (their members told) in the same
    transaction. Returns the window and the cancelled bookings.
    """
    require_manager(machine.lab, actor)
    _require_aware(start=start, end=end)
    _require_range(start, end, "maintenance window")
    if not reason.strip():
        raise ValidationError("Say what the maintenance is for.")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    with transaction.atomic():
        machine = timeline_lock(machine.pk)
        lab = machine.lab
        in_the_way = selectors.timeline_between(machine, start, end)
        blocking = [r for r in in_the_way if r.kind != Booking.Kind.BOOKING]
        if blocking:
            raise _collision_error(machine, blocking[0])
        if in_the_way and not cancel_overlapping:
            raise Conflict(
                f"{len(in_the_way)} booking(s) of {machine.name} overlap this window: cancel them, "
                "or block it with cancel_overlapping.",
                overlapping=[
                    {"id": r.pk, "start": r.start.isoformat(), "end": r.end.isoformat()} for r in in_the_way
                ],
            )
        now = timezone.now()
        for row in in_the_way:
            Booking.objects.filter(pk=row.pk).update(
                status=Booking.Status.CANCELLED,
                reason=f"Maintenance: {reason}",
                decided_by=actor,
                decided_at=now,
            )
            notify(
                user=row.booking_member,
                lab=lab,
                booking=row,
                body=reason,
                subject=f"Cancelled for maintenance: {machine.name} {_span(row.start, row.end, lab)}",
            )
        window = timeline_insert(
            machine,
            kind=Booking.Kind.MAINTENANCE,
            status=Booking.Status.APPROVED,
            member=None,
            created_by=actor,
            start=start,
            end=end,
            reason=reason,
        )
    return window, in_the_way


def booking_check_start(*, booking_id: int) -> Booking | None:
    """Check a booking again as it starts: its member must still be qualified.

    Claimed with a conditional update, so running twice (two beat ticks, two workers)
    checks once. A member no longer qualified loses the booking and is told why.
    """
    now = timezone.now()
    if not Booking.objects.filter(pk=booking_id, start_checked_at__isnull=True).update(start_checked_at=now):
        return None
    booking = Booking.objects.select_related("machine", "machine__lab", "member").get(pk=booking_id)
    if (
        booking.kind != Booking.Kind.BOOKING
        or not booking.is_active
        or not booking.machine.requires_qualification
    ):
        return booking
    lab = booking.machine.lab
    day = booking.start.astimezone(lab.zone).date()
    if selectors.qualification_for(booking.booking_member, booking.machine, day) is not None:
        return booking
    with transaction.atomic():
        reason = f"No valid qualification for {booking.machine.name} on {day:%d %b %Y}."
        if Booking.objects.filter(pk=booking.pk, status__in=Booking.ACTIVE).update(
            status=Booking.Status.CANCELLED, reason=reason, decided_at=now
        ):
            notify(
                user=booking.booking_member,
                lab=lab,
                booking=booking,
                body=reason,
                subject=f"Cancelled: {booking.machine.name} {_span(booking.start, booking.end, lab)}",
            )
    booking.refresh_from_db()
    return booking


# -- calendar feeds ---------------------------------------------------------------------------


def calendar_feed_get(*, owner: User, lab: Lab | None = None, machine: Machine | None = None) -> CalendarFeed:
    """The owner's feed of a lab, a machine or their own bookings, made on first use."""
    if machine is not None:
        lab = machine.lab
        scope = CalendarFeed.Scope.MACHINE
    else:
        scope = CalendarFeed.Scope.LAB if lab is not None else CalendarFeed.Scope.MEMBER
    if lab is not None:
        require_member(lab, owner)
    feed, _ = CalendarFeed.objects.get_or_create(owner=owner, scope=scope, lab=lab, machine=machine)
    return feed


def calendar_feed_reset(*, feed: CalendarFeed, actor: User) -> CalendarFeed:
    """A new address for the feed; the old one stops working."""
    if feed.owner_id != actor.pk:
        raise NotFound("There is no such feed.")
    feed.token = new_feed_token()
    feed.save(update_fields=["token"])
    return feed
