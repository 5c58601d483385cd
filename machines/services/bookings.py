"""Bookings: the rules and quota checks, the member's and the managers' decisions,
maintenance windows, and the check as a booking starts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from hub.exceptions import Conflict, NotFound, ValidationError
from hub.models import User
from machines import credits, selectors, timeline
from machines.accounting import job_cost, lab_prices
from machines.models import Booking, Lab, LabMembership, Machine
from machines.notifications import notify, notify_managers
from machines.selectors import lab_role, require_manager, require_member_role, rules_for
from machines.services.qualifications import require_qualified
from machines.services.timeline import (
    collision_error,
    local_span,
    local_time,
    require_aware,
    require_range,
    timeline_hold,
    timeline_insert,
    timeline_lock,
    timeline_lock_insert,
)


def _check_rules(context: selectors.BookingContext, start: datetime, end: datetime, now: datetime) -> None:
    machine = context.machine
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
    if context.closures:
        first = context.closures[0]
        why = f": {first.reason}" if first.reason else ""
        raise ValidationError(f"{lab.name} is closed {local_span(first.start, first.end, lab)}{why}.")
    hours = timeline.opening_intervals(context.hours, lab.zone, start, end)
    if not timeline.contains(hours, start, end):
        raise ValidationError(
            f"{local_span(start, end, lab)} is outside {lab.name}'s opening hours: see the lab's page."
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


def _unavailable(machine: Machine) -> Conflict:
    return Conflict(
        f"{machine.name} is {machine.get_status_display().lower()}"
        f"{': ' + machine.status_reason if machine.status_reason else ''}. Try another machine."
    )


def _check_context(context: selectors.BookingContext, member: User, start: datetime, end: datetime) -> bool:
    """Every rule `context` answers; returns whether the booking waits for a manager."""
    machine = context.machine
    require_member_role(machine.lab, context.role)
    if not machine.is_bookable:
        raise _unavailable(machine)
    _check_rules(context, start, end, timezone.now())
    require_qualified(member, machine, start, held=context.qualifications)
    return rules_for(machine).requires_approval and context.role != "manager"


def _rule(name: str) -> str:
    # As `rules_for`: the machine's own value, else its lab's, else the default.
    return f"COALESCE(m.{name}, l.{name}, %(default_{name})s)"


def _qualified_on(day: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM machines_qualification q WHERE q.lab_id = m.lab_id AND q.member_id = %(member)s "
        "AND (q.machine_id = m.id OR (q.machine_id IS NULL AND q.kind = m.kind)) "
        f"AND q.trained_on <= {day} AND (q.expires_on IS NULL OR {day} <= q.expires_on))"
    )


# A plain booking (`booking_create`'s one statement): every rule `_check_context` checks,
# and nothing more to do (no quota, approval or credit), as a condition PostgreSQL checks
# in the statement that writes the booking. It may refuse what Python would accept (the
# booking is then decided in Python), never the reverse: each line is the Python rule's
# negation, with Python's own values (`now`, the length, and the wall clock in the lab's
# zone, `_plain_booking_params`), except the opening hours, which only accept a booking
# inside one interval of its start's day (a booking across midnight or two intervals is
# decided in Python). A new rule in `_check_context` needs its line here too (or a line
# that sends the bookings it concerns to Python): without one, this statement books what
# Python would refuse. tests/machines/test_plain_booking_statement.py has a test per rule.
_PLAIN_RULES = (
    # The zone the wall-clock parameters were computed in is still the lab's.
    "l.timezone = %(zone)s",
    # A member or a manager of the lab, who needs no approval.
    "EXISTS (SELECT 1 FROM machines_labmembership ms WHERE ms.lab_id = m.lab_id AND ms.user_id = %(member)s "
    "AND ms.status <> %(pending)s AND (ms.role = %(manager)s OR (ms.role = %(role_member)s "
    f"AND NOT {_rule('requires_approval')})))",
    "m.weekly_quota_minutes IS NULL AND l.weekly_quota_minutes IS NULL",
    "NOT EXISTS (SELECT 1 FROM machines_printsettings p WHERE p.lab_id = m.lab_id AND p.credits_enabled)",
    f"%(length)s >= {_rule('min_booking_minutes')} AND %(length)s <= {_rule('max_booking_minutes')}",
    f"%(start)s >= %(now)s AND %(start)s >= %(now)s + make_interval(mins => {_rule('min_notice_minutes')})",
    f"%(start)s <= %(now)s + make_interval(hours => 24 * {_rule('max_horizon_days')})",
    "NOT EXISTS (SELECT 1 FROM machines_closure c WHERE c.lab_id = m.lab_id "
    'AND c.start < %(end)s AND c."end" > %(start)s)',
    # closes 00:00 is midnight at the end of the day; a NULL end time ends at that midnight.
    "EXISTS (SELECT 1 FROM machines_openinghours h WHERE h.lab_id = m.lab_id AND h.weekday = %(weekday)s "
    "AND h.opens <= %(start_time)s AND (h.closes = '00:00' OR %(end_time)s <= h.closes))",
)

# The member's qualifications are read only for a machine the caller's copy says needs
# one: two subqueries that add about 15 % to the statement's planning, on every booking.
# The other form still refuses a machine that needs one now (Python then decides).
PLAIN_BOOKING = " AND ".join((*_PLAIN_RULES, "NOT m.requires_qualification"))
PLAIN_QUALIFIED_BOOKING = " AND ".join(
    (
        *_PLAIN_RULES,
        f"(NOT m.requires_qualification OR ({_qualified_on('%(today)s')} AND {_qualified_on('%(day)s')}))",
    )
)


def _plain_booking_params(
    machine: Machine, member: User, start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The parameters of `PLAIN_BOOKING`, or None for a booking it cannot accept.

    The opening hours are compared in the lab's wall clock, which is the instants' order
    only where the zone keeps one offset: from a day before the start to a day after, so
    over the whole of the start's day and the midnight that ends it (`timeline.wall_clock`
    reads a skipped or repeated wall-clock time as PostgreSQL does not). Around a clock
    change, and for a booking past the midnight after its start, Python decides.
    """
    lab = machine.lab
    zone = lab.zone
    try:
        day_before = (start - timedelta(hours=25)).astimezone(zone)
        day_after = (start + timedelta(hours=25)).astimezone(zone)
        local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    except OverflowError:  # a day off the end of the calendar: Python refuses it in words
        return None
    if day_before.utcoffset() != day_after.utcoffset():
        return None
    day = local_start.date()
    if local_end.date() == day:
        end_time: time | None = local_end.time()
    elif local_end.date() == day + timedelta(days=1) and local_end.time() == time(0):
        end_time = None
    else:
        return None
    now = timezone.now()
    params: dict[str, Any] = {f"default_{name}": value for name, value in Lab.DEFAULT_RULES.items()}
    params.update(
        zone=lab.timezone,
        member=member.pk,
        pending=LabMembership.Status.PENDING.value,
        manager=LabMembership.Role.MANAGER.value,
        role_member=LabMembership.Role.MEMBER.value,
        start=start,
        end=end,
        now=now,
        length=(end - start).total_seconds() / 60,
        weekday=day.weekday(),
        start_time=local_start.time(),
        end_time=end_time,
        today=now.astimezone(zone).date(),
        day=day,
    )
    return params


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
    mismatch is refused rather than trusted. Every rule is decided under the machine's
    timeline lock, from what the database holds then: the writers of what the rules read
    (closures, opening hours, qualifications, memberships: `timelines_lock`) take the
    lock too, so a booking racing them either commits first, and they see it, or sees
    their change. On PostgreSQL a plain booking (no quota, approval or credit) is one
    statement, `timeline_lock_insert` with the rules as its condition (`PLAIN_BOOKING`).
    Any other booking, one that statement does not write, and every booking on SQLite
    are decided in Python: a first read (`selectors.booking_context`) refuses early with
    the rule's words, then the lock, the same read again, the rules, the quota and the
    overlap (docs/labs.md).
    """
    require_aware(start=start, end=end)
    require_range(start, end)
    if lab is not None and lab.pk != machine.lab_id:
        raise ValidationError(f"{machine.name} is a machine of {machine.lab.name}, not of {lab.name}.")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    fields: dict[str, Any] = {
        "kind": Booking.Kind.BOOKING,
        "member": member,
        "created_by": member,
        "start": start,
        "end": end,
        "note": note,
    }
    params = _plain_booking_params(machine, member, start, end) if connection.vendor == "postgresql" else None
    if params is not None:
        booking = Booking(machine=machine, status=Booking.Status.APPROVED, **fields)
        where = PLAIN_QUALIFIED_BOOKING if machine.requires_qualification else PLAIN_BOOKING
        if timeline_lock_insert(booking, where=where, params=params):
            return booking
        # Not plain, refused by a rule, or the machine changed: Python decides, and says why.
    machine_id = machine.pk
    context = selectors.booking_context(machine_id=machine_id, member=member, start=start, end=end)
    _check_context(context, member, start, end)
    with transaction.atomic():
        timeline_hold(machine_id)
        context = selectors.booking_context(machine_id=machine_id, member=member, start=start, end=end)
        machine = context.machine
        needs_approval = _check_context(context, member, start, end)
        _check_quota(machine, member, start, end)
        row = selectors.collision(machine, start, end)
        if row is not None:
            raise collision_error(machine, row)
        status = Booking.Status.PENDING if needs_approval else Booking.Status.APPROVED
        booking = timeline_insert(machine, status=status, **fields)
        if context.credits_enabled:
            _hold_for(booking)
        if needs_approval:
            notify_managers(
                machine.lab,
                booking=booking,
                but=member,
                subject=f"{member.username} asks for {machine.name} {local_span(start, end, machine.lab)}",
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
        subject=f"Confirmed: {booking.machine.name} {local_span(booking.start, booking.end, lab)}",
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
    _release_for(booking, "refused")
    lab = booking.machine.lab
    notify(
        user=booking.booking_member,
        lab=lab,
        booking=booking,
        body=reason,
        subject=f"Refused: {booking.machine.name} {local_span(booking.start, booking.end, lab)}",
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
                f"Bookings of {booking.machine.name} can be cancelled until {local_time(deadline, lab)}; ask a manager."
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
    _release_for(booking, "cancelled")
    if booking.member_id and booking.member_id != actor.pk:
        notify(
            user=booking.booking_member,
            lab=lab,
            booking=booking,
            body=reason,
            subject=f"Cancelled: {booking.machine.name} {local_span(booking.start, booking.end, lab)}",
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
        subject=f"Kept: your booking of {booking.machine.name} {local_span(booking.start, booking.end, lab)} stands",
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
    require_aware(start=start, end=end)
    require_range(start, end, "maintenance window")
    if not reason.strip():
        raise ValidationError("Say what the maintenance is for.")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    with transaction.atomic():
        machine = timeline_lock(machine.pk)
        lab = machine.lab
        in_the_way = selectors.timeline_between(machine, start, end)
        blocking = [r for r in in_the_way if r.kind != Booking.Kind.BOOKING]
        if blocking:
            raise collision_error(machine, blocking[0])
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
            _release_for(row, "cancelled for maintenance")
            notify(
                user=row.booking_member,
                lab=lab,
                booking=row,
                body=reason,
                subject=f"Cancelled for maintenance: {machine.name} {local_span(row.start, row.end, lab)}",
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
            _release_for(booking, "cancelled")
            notify(
                user=booking.booking_member,
                lab=lab,
                booking=booking,
                body=reason,
                subject=f"Cancelled: {booking.machine.name} {local_span(booking.start, booking.end, lab)}",
            )
    booking.refresh_from_db()
    return booking


# -- priced bookings: the credit they hold (machines/credits.py, docs/labs.md) -------------------


def booking_price(booking: Booking) -> Decimal:
    """What the booked time costs: its hours at the machine's price per hour, or else the
    lab's price per machine-hour (no fee, no material)."""
    prices = lab_prices(booking.machine.lab)
    seconds = (booking.end - booking.start).total_seconds()
    with_fee = job_cost(prices, material="", grams=None, seconds=seconds, machine=booking.machine)
    return with_fee - prices.per_job


def _hold_for(booking: Booking) -> None:
    """A member's booking at a lab with credits holds its price until it ends (the caller
    checked that the lab uses credits)."""
    lab = booking.machine.lab
    if booking.kind != Booking.Kind.BOOKING or booking.member is None:
        return
    amount = booking_price(booking)
    if not amount:
        return
    credits.credit_hold(
        lab=lab,
        user=booking.member,
        amount=amount,
        booking=booking,
        note=f"Booking of {booking.machine.name}",
    )
    Booking.objects.filter(pk=booking.pk).update(held_amount=amount)
    booking.held_amount = amount


def _release_for(booking: Booking, why: str) -> None:
    """A booking that will not happen gives its hold back (claimed: only once)."""
    held = Booking.objects.filter(pk=booking.pk).values_list("held_amount", flat=True).first()
    if not held or booking.member is None:
        return
    if Booking.objects.filter(pk=booking.pk, held_amount=held).update(held_amount=Decimal(0)):
        credits.credit_release(
            lab=booking.machine.lab,
            user=booking.member,
            amount=held,
            booking=booking,
            note=f"Booking of {booking.machine.name} {why}",
        )


def bookings_settle(*, now: datetime | None = None) -> int:
    """Settle the holds of bookings that ended (their price is charged: the slot was the
    member's) and release those of bookings cancelled by a path that did not release them
    (a member leaving the lab). Run periodically (`manage.py settle_bookings`); each
    booking is claimed by a conditional update, so two runs settle it once."""
    now = now or timezone.now()
    rows = Booking.objects.filter(held_amount__gt=0, kind=Booking.Kind.BOOKING).select_related(
        "machine", "machine__lab", "member"
    )
    settled = 0
    for booking in rows.filter(status__in=Booking.ACTIVE, end__lte=now):
        with transaction.atomic():
            held = booking.held_amount
            cost = booking_price(booking)
            if not Booking.objects.filter(pk=booking.pk, held_amount=held).update(
                held_amount=Decimal(0), cost=cost
            ):
                continue
            credits.credit_settle(
                lab=booking.machine.lab,
                user=booking.booking_member,
                held=held,
                actual=cost,
                policy="charge",
                tolerance_percent=0,
                booking=booking,
                note=f"Booking of {booking.machine.name}",
            )
            settled += 1
    for booking in rows.exclude(status__in=Booking.ACTIVE):
        with transaction.atomic():
            _release_for(booking, booking.get_status_display().lower())
            settled += 1
    return settled
