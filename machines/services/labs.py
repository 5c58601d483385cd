"""Labs and their members: rules, opening hours, closures, memberships."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.timezone import now as timezone_now

from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from hub.markdown import check_length, render_field
from hub.models import User
from machines.models import Booking, Closure, Lab, LabMembership, OpeningHours
from machines.notifications import notify, notify_managers
from machines.selectors import require_approved, require_manager
from machines.services.timeline import local_span, require_aware, require_range, timelines_lock


# Public because equipment validates machines the same way; it builds on this module.
def full_clean(instance, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude, validate_constraints=False)
    except DjangoValidationError as exc:
        messages = [
            f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            for field, errors in exc.message_dict.items()
        ]
        raise ValidationError(" ".join(messages), fields=exc.message_dict) from None


LAB_FIELDS = (
    "name", "address", "timezone", "locale", "description", "join_policy", "latitude", "longitude", *Lab.RULE_FIELDS,
)  # fmt: skip


def _check_booking_lengths(lab: Lab) -> None:
    """The lab_min_booking_not_above_max constraint, as a message: `full_clean` leaves
    constraints out, and a change of one bound alone (a PATCH) can cross the other."""
    low, high = lab.min_booking_minutes, lab.max_booking_minutes
    if low is not None and high is not None and low > high:
        raise ValidationError(
            f"The shortest booking ({low} min) cannot be longer than the longest ({high} min).",
            field="min_booking_minutes",
        )


def _check_coordinates(lab: Lab) -> None:
    if (lab.latitude is None) != (lab.longitude is None):
        raise ValidationError("Give both the latitude and the longitude, or neither.", field="latitude")


@transaction.atomic
def lab_create(*, creator: User, name: str, slug: str, timezone: str = "UTC", **fields: Any) -> Lab:
    """Create a lab; its creator is its first manager. Unless the site lets anyone open
    one (FABHUB_OPEN_LAB_CREATION) or the creator is a site administrator, it waits for
    an administrator's approval (`lab_approve`) before it takes machines or members."""
    unknown = set(fields) - set(LAB_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown lab fields: {', '.join(sorted(unknown))}.")
    values = {**Lab.DEFAULT_RULES, **{k: v for k, v in fields.items() if v is not None}}
    lab = Lab(name=name, slug=slug, timezone=timezone, **values)
    if settings.FABHUB_OPEN_LAB_CREATION or creator.is_staff:
        lab.approved_at = timezone_now()
    _check_coordinates(lab)
    check_length(lab.description, field="description")
    render_field(lab, "description")
    full_clean(lab)
    _check_booking_lengths(lab)
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
    _check_coordinates(lab)
    check_length(lab.description, field="description")
    render_field(lab, "description")
    full_clean(lab, exclude=["slug"])
    _check_booking_lengths(lab)
    timelines_lock(lab_id=lab.pk)  # the rules bookings are decided by
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
    timelines_lock(lab_id=lab.pk)  # a booking racing the change commits first or sees it
    lab.opening_hours.all().delete()
    return OpeningHours.objects.bulk_create(
        [
            OpeningHours(lab=lab, weekday=d, opens=o, closes=c)
            for d, spans in sorted(by_day.items())
            for o, c in spans
        ]
    )


def flag_affected(rows: list[Booking], lab: Lab, *, subject: str, body: str) -> list[Booking]:
    """Mark future bookings a manager must decide on, and tell their members."""
    flagged = [r for r in rows if r.kind == Booking.Kind.BOOKING]
    Booking.objects.filter(pk__in=[r.pk for r in flagged]).update(needs_decision=True)
    for row in flagged:
        row.needs_decision = True
        notify(
            user=row.booking_member,
            lab=lab,
            booking=row,
            subject=f"{subject}: your booking {local_span(row.start, row.end, lab)}",
            body=f"{body}\nThe lab's managers will decide whether your booking is cancelled or kept.",
        )
    return flagged


@transaction.atomic
def closure_create(
    *, lab: Lab, actor: User, start: datetime, end: datetime, reason: str = ""
) -> tuple[Closure, list[Booking]]:
    """Close the lab over [start, end). Bookings already there are flagged for a decision."""
    require_manager(lab, actor)
    require_aware(start=start, end=end)
    require_range(start, end, "closure")
    # A booking racing the closure commits first (and is flagged below) or sees it.
    timelines_lock(lab_id=lab.pk)
    closure = Closure.objects.create(lab=lab, start=start, end=end, reason=reason)
    rows = list(
        Booking.objects.filter(
            machine__lab=lab, status__in=Booking.ACTIVE, start__lt=end, end__gt=max(start, timezone.now())
        ).select_related("member")
    )
    flagged = flag_affected(
        rows,
        lab,
        subject=f"{lab.name} will be closed",
        body=f"{lab.name} is closed {local_span(start, end, lab)}{': ' + reason if reason else ''}.",
    )
    return closure, flagged


def closure_delete(*, closure: Closure, actor: User) -> None:
    require_manager(closure.lab, actor)
    closure.delete()


@transaction.atomic
def membership_join(*, lab: Lab, user: User) -> LabMembership:
    """Join an open lab, or ask to join one whose managers approve members."""
    require_approved(lab)
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
        raise Conflict(f"{lab.name} needs at least one manager.")
    timelines_lock(lab_id=lab.pk)  # a manager's bookings skip approval
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
        raise Conflict(f"{lab.name} needs at least one manager: name another one first.")
    # A booking racing the removal commits first (and is cancelled below) or is refused.
    timelines_lock(lab_id=lab.pk)
    membership.delete()
    Booking.objects.filter(
        member=user, machine__lab=lab, status__in=Booking.ACTIVE, start__gt=timezone.now()
    ).update(status=Booking.Status.CANCELLED, reason=f"{user.username} left {lab.name}.")


def memberships_of_leaving_account(user: User) -> None:
    """An account is being deleted (hub.accounts): refuse while a lab would lose its last
    manager; otherwise memberships, qualifications and bookings go with the account."""
    sole = [
        membership.lab.name
        for membership in LabMembership.objects.filter(
            user=user, role=LabMembership.Role.MANAGER, status=LabMembership.Status.ACTIVE
        ).select_related("lab")
        if not _other_managers(membership.lab, user)
    ]
    if sole:
        raise Conflict(
            f"You are the only manager of {', '.join(sorted(sole))}: make someone else a manager first."
        )


@transaction.atomic
def lab_approve(*, lab: Lab, actor: User) -> Lab:
    """A site administrator approves a requested lab; its managers are told."""
    if not actor.is_staff:
        raise PermissionDenied("Only the hub's administrators approve labs.")
    if lab.approved_at is None:
        lab.approved_at = timezone_now()
        lab.save(update_fields=["approved_at"])
        notify_managers(lab, subject=f"{lab.name} is approved", body="You can add its machines now.")
    return lab
