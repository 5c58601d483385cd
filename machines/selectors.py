"""Reads of labs, machines and timelines: who may do what, the rules in force, free slots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import (
    Count,
    F,
    Field,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from hub.auth import Viewer
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.models import User
from machines import timeline
from machines.models import (
    Booking,
    CalendarFeed,
    Closure,
    Lab,
    LabAgent,
    LabMembership,
    Machine,
    PrintJob,
    Qualification,
    Spool,
)
from machines.rows import column_conversions, converted
from machines.timeline import Interval

SLOT_STEP = timedelta(minutes=5)
MAX_AVAILABILITY_DAYS = 93


# -- labs and roles ---------------------------------------------------------------------


def labs_visible_to(user: Viewer | None) -> QuerySet[Lab]:
    """Approved labs, plus the requested ones `user` manages (or all, for site staff)."""
    labs = Lab.objects.all()
    if user is not None and user.is_authenticated and user.is_staff:
        return labs
    if user is None or not user.is_authenticated:
        return labs.filter(approved_at__isnull=False)
    return labs.filter(
        Q(approved_at__isnull=False) | Q(memberships__user=user, memberships__role=LabMembership.Role.MANAGER)
    ).distinct()


def labs_list(user: Viewer | None = None) -> QuerySet[Lab]:
    return labs_visible_to(user).annotate(machine_count=Count("machines")).order_by("name")


def lab_get(*, slug: str) -> Lab:
    lab = Lab.objects.filter(slug=slug).first()
    if lab is None:
        raise NotFound(f"There is no lab {slug!r}.")
    return lab


def require_approved(lab: Lab) -> None:
    """A requested lab takes no machines, members or bookings until it is approved."""
    if lab.approved_at is None:
        raise PermissionDenied(
            f"{lab.name} waits for the hub's administrators to approve it; machines, members "
            "and bookings come after."
        )


def lab_role(lab: Lab, user: Viewer | None) -> str | None:
    """'manager', 'member', 'pending' (asked to join) or None."""
    if user is None or not user.is_authenticated:
        return None
    membership = LabMembership.objects.filter(lab=lab, user=user).only("role", "status").first()
    if membership is None:
        return None
    if membership.status == LabMembership.Status.PENDING:
        return "pending"
    return membership.role


def require_manager(lab: Lab, user: User) -> None:
    if lab_role(lab, user) != "manager":
        raise PermissionDenied(f"Only managers of {lab.name} can do this.")


def require_member(lab: Lab, user: User) -> None:
    require_member_role(lab, lab_role(lab, user))


def require_member_role(lab: Lab, role: str | None) -> None:
    """`require_member` for a role the caller has read already."""
    if role not in ("member", "manager"):
        raise PermissionDenied(f"Only members of {lab.name} can do this; join the lab first.")


def labs_of(user: User) -> QuerySet[Lab]:
    return Lab.objects.filter(memberships__user=user, memberships__status=LabMembership.Status.ACTIVE)


def labs_managed_by(user: User) -> QuerySet[Lab]:
    return labs_of(user).filter(memberships__role=LabMembership.Role.MANAGER)


def lab_members(lab: Lab) -> QuerySet[LabMembership]:
    return lab.memberships.select_related("user").order_by("status", "role", "user__username")


# -- machines and rules -------------------------------------------------------------------


def machine_get(*, lab: Lab, slug: str) -> Machine:
    machine = Machine.objects.select_related("lab").filter(lab=lab, slug=slug).first()
    if machine is None:
        raise NotFound(f"{lab.name} has no machine {slug!r}.")
    return machine


def machine_get_by_id(machine_id: int) -> Machine:
    machine = Machine.objects.select_related("lab").filter(pk=machine_id).first()
    if machine is None:
        raise NotFound(f"There is no machine {machine_id}.")
    return machine


@dataclass(frozen=True)
class Rules:
    min_booking_minutes: int
    max_booking_minutes: int
    min_notice_minutes: int
    max_horizon_days: int
    weekly_quota_minutes: int | None
    requires_approval: bool
    cancel_deadline_minutes: int
    # Whose hours the quota counts: the machine's own quota counts that machine only.
    quota_per_machine: bool


def rules_for(machine: Machine) -> Rules:
    """The rules in force for `machine`: its own where set, else its lab's."""
    values: dict[str, Any] = {}
    for name in Lab.RULE_FIELDS:
        own = getattr(machine, name)
        lab_value = getattr(machine.lab, name)
        values[name] = (
            own
            if own is not None
            else (
                lab_value
                if lab_value is not None or name == "weekly_quota_minutes"
                else Lab.DEFAULT_RULES[name]
            )
        )
    return Rules(**values, quota_per_machine=machine.weekly_quota_minutes is not None)


# -- time: opening hours, timelines, free slots -----------------------------------------------


def _json_array() -> str:
    return "JSONB_BUILD_ARRAY" if connection.vendor == "postgresql" else "JSON_ARRAY"


def _json_select(columns: str, rows: str) -> str:
    """`SELECT columns FROM rows` as one JSON array of arrays, NULL when there are none:
    jsonb_agg(jsonb_build_array(…)) on PostgreSQL, json_group_array(json_array(…)) on
    SQLite. Written as SQL rather than built with the ORM: for these small reads, building
    and compiling the ORM's subqueries cost several times the query itself (profiled with
    bench/bookings.py; docs/labs.md)."""
    agg = "JSONB_AGG" if connection.vendor == "postgresql" else "JSON_GROUP_ARRAY"
    return f"SELECT {agg}({_json_array()}({columns})) FROM {rows}"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _db_instant(value: datetime) -> Any:
    """A datetime parameter of hand-written SQL, as the ORM would pass it (on SQLite: the
    naive UTC text it stores, so that comparisons are right to the second)."""
    return connection.ops.adapt_datetimefield_value(value)


def _instant(value: str) -> datetime:
    # PostgreSQL's JSON carries the offset; SQLite's stored text is naive UTC.
    instant = datetime.fromisoformat(value)
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _intervals(rows: list[list[str]] | None) -> list[Interval]:
    return [(_instant(s), _instant(e)) for s, e in rows or ()]


def _weekly(rows: list[list[Any]] | None) -> list[tuple[int, time, time]]:
    return [
        (weekday, time.fromisoformat(opens), time.fromisoformat(closes))
        for weekday, opens, closes in rows or ()
    ]


def weekly_hours(lab: Lab) -> list[tuple[int, time, time]]:
    return [(h.weekday, h.opens, h.closes) for h in lab.opening_hours.all()]


def closures_between(lab: Lab, start: datetime, end: datetime) -> list[Closure]:
    return list(Closure.objects.filter(lab=lab, start__lt=end, end__gt=start).order_by("start"))


def open_intervals(lab: Lab, start: datetime, end: datetime) -> list[Interval]:
    """When the lab is open within [start, end): weekly hours minus closures, in UTC."""
    hours = timeline.opening_intervals(weekly_hours(lab), lab.zone, start, end)
    return timeline.subtract(hours, [(c.start, c.end) for c in closures_between(lab, start, end)])


def _timeline_reads(machine: Machine, start: datetime, end: datetime) -> tuple[QuerySet, QuerySet]:
    """The two index range reads that find a machine's active rows overlapping [start, end).

    Active rows never overlap, so at most one of them starts before `start` and still
    runs: the latest one that starts before it. Both reads are ranges of the partial
    index on (machine, start), however long the machine's history.
    """
    active = Booking.objects.filter(machine=machine, status__in=Booking.ACTIVE)
    return active.filter(start__gte=start, start__lt=end).order_by("start"), active.filter(
        start__lt=start
    ).order_by("-start")[:1]


def timeline_between(machine: Machine, start: datetime, end: datetime) -> list[Booking]:
    """The machine's active timeline rows that overlap [start, end), by start."""
    inside, before = _timeline_reads(machine, start, end)
    rows = list(inside)
    earlier = list(before)
    if earlier and earlier[0].end > start:
        rows.insert(0, earlier[0])
    return rows


def busy_between(machine: Machine, start: datetime, end: datetime) -> list[Interval]:
    """The same rows as `timeline_between`, as bare intervals (no model instances)."""
    inside, before = _timeline_reads(machine, start, end)
    intervals = list(inside.values_list("start", "end"))
    earlier = list(before.values_list("start", "end"))
    if earlier and earlier[0][1] > start:
        intervals.insert(0, earlier[0])
    return intervals


def collision(
    machine: Machine, start: datetime, end: datetime, *, exclude_id: int | None = None
) -> Booking | None:
    for row in timeline_between(machine, start, end):
        if row.pk != exclude_id:
            return row
    return None


def _ceil(instant: datetime, step: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=instant.tzinfo)
    steps = math.ceil((instant - epoch) / step)
    return epoch + steps * step


def bookable_window(machine: Machine, *, now: datetime | None = None) -> Interval:
    """From the earliest start the notice rule allows to the end of the horizon."""
    rules = rules_for(machine)
    now = now or timezone.now()
    return (
        _ceil(now + timedelta(minutes=rules.min_notice_minutes), SLOT_STEP),
        now + timedelta(days=rules.max_horizon_days),
    )


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValidationError("The end must come after the start.")
    if end - start > timedelta(days=MAX_AVAILABILITY_DAYS):
        raise ValidationError(f"Ask for at most {MAX_AVAILABILITY_DAYS} days at a time.")


def machine_free_slots(
    machine: Machine, start: datetime, end: datetime, *, now: datetime | None = None
) -> list[Interval]:
    """Bookable free time of `machine` within [start, end): open hours, minus closures,
    minus its timeline (bookings and maintenance windows), within notice and horizon. A
    machine in maintenance or out of order has none."""
    check_range(start, end)
    if not machine.is_bookable:
        return []
    low, high = bookable_window(machine, now=now)
    start, end = max(start, low), min(end, high)
    if end <= start:
        return []
    hours, closed, busy = _window_read(machine, start, end)
    opened = timeline.subtract(timeline.opening_intervals(hours, machine.lab.zone, start, end), closed)
    return timeline.subtract(opened, busy)


def _window_read(
    machine: Machine, start: datetime, end: datetime
) -> tuple[list[tuple[int, time, time]], list[Interval], list[Interval]]:
    """`weekly_hours`, `closures_between` and `busy_between` for one window, in one query
    (`_json_select`): availability is asked often, and its reads are small. The machine's
    rows are read as `_timeline_reads` reads them: those starting in the window, and the
    latest one starting before it."""
    active = "b.machine_id = %s AND b.status IN ('pending', 'approved')"
    sql = (
        f"SELECT ({_json_select('h.weekday, h.opens, h.closes', 'machines_openinghours h WHERE h.lab_id = %s')}), "
        f"""({_json_select('c.start, c."end"', 'machines_closure c WHERE c.lab_id = %s AND c.start < %s AND c."end" > %s')}), """
        f"""({_json_select('b.start, b."end"', f"machines_booking b WHERE {active} AND b.start >= %s AND b.start < %s")}), """
        f"""(SELECT {_json_array()}(b.start, b."end") FROM machines_booking b WHERE {active} AND b.start < %s """
        "ORDER BY b.start DESC LIMIT 1)"
    )
    low, high, lab = _db_instant(start), _db_instant(end), machine.lab_id
    with connection.cursor() as cursor:
        cursor.execute(sql, [lab, lab, high, low, machine.pk, low, high, machine.pk, low])
        hours, closures, inside, earlier = (_json(v) for v in cursor.fetchone())
    busy = _intervals(inside)
    before = _intervals([earlier] if earlier else [])
    if before and before[0][1] > start:
        busy.insert(0, before[0])
    return _weekly(hours), _intervals(closures), busy


def kind_free_slots(
    lab: Lab, kind: str, start: datetime, end: datetime, *, now: datetime | None = None
) -> list[tuple[Machine, list[Interval]]]:
    """`machine_free_slots` of every machine of `kind` in `lab`, in a fixed number of queries:
    the lab's hours and closures read once, every timeline in the same two index reads."""
    check_range(start, end)
    active = Booking.objects.filter(status__in=Booking.ACTIVE)
    earlier = active.filter(machine=OuterRef("pk"), start__lt=start).order_by("-start")
    machines = list(
        Machine.objects.select_related("lab")
        .filter(lab=lab, kind=kind)
        .annotate(
            earlier_start=Subquery(earlier.values("start")[:1]),
            earlier_end=Subquery(earlier.values("end")[:1]),
        )
        .order_by("name")
    )
    windows: dict[int, Interval] = {}
    for machine in machines:
        low, high = bookable_window(machine, now=now)
        if machine.is_bookable and max(start, low) < min(end, high):
            windows[machine.pk] = (max(start, low), min(end, high))
    if not windows:
        return [(m, []) for m in machines]
    # Every window lies in [start, end): a row overlapping one either starts inside
    # [start, end) or is the machine's latest row starting before it (rows never overlap).
    opened = open_intervals(lab, start, end)
    busy: dict[int, list[Interval]] = {pk: [] for pk in windows}
    inside = active.filter(machine_id__in=windows, start__gte=start, start__lt=end)
    for machine_id, row_start, row_end in inside.values_list("machine_id", "start", "end"):
        busy[machine_id].append((row_start, row_end))
    for machine in machines:
        if machine.pk in windows and machine.earlier_end is not None and machine.earlier_end > start:
            busy[machine.pk].append((machine.earlier_start, machine.earlier_end))
    return [
        (m, timeline.subtract(timeline.clip(opened, *windows[m.pk]), busy[m.pk]) if m.pk in windows else [])
        for m in machines
    ]


def first_free_slot(
    lab: Lab,
    kind: str,
    minutes: int,
    *,
    after: datetime | None = None,
    member: User | None = None,
    now: datetime | None = None,
) -> tuple[Machine, datetime, datetime] | None:
    """The earliest [start, start + minutes) free on any bookable machine of `kind` in
    `lab` (for `member`: only machines they are qualified for), within each machine's
    horizon; ties go to the machine whose name sorts first."""
    now = now or timezone.now()
    length = timedelta(minutes=minutes)
    best: tuple[Machine, datetime, datetime] | None = None
    for machine in Machine.objects.select_related("lab").filter(lab=lab, kind=kind).order_by("name"):
        rules = rules_for(machine)
        if not machine.is_bookable or not rules.min_booking_minutes <= minutes <= rules.max_booking_minutes:
            continue
        if (
            member is not None
            and machine.requires_qualification
            and not qualification_for(member, machine, now.astimezone(lab.zone).date())
        ):
            continue
        low, high = bookable_window(machine, now=now)
        low = max(low, _ceil(after, SLOT_STEP)) if after else low
        if best is not None:
            high = min(high, best[1])  # only an earlier slot can win
        if high <= low:
            continue
        # Look a week at a time: the first week with a slot usually holds the answer.
        cursor = low
        while cursor < high:
            stop = min(cursor + timedelta(days=7), high)
            busy = busy_between(machine, cursor, stop + length)
            free = timeline.subtract(open_intervals(lab, cursor, stop + length), busy)
            found = next((s for s, e in free if e - s >= length and s < stop), None)
            if found is not None:
                if best is None or found < best[1]:
                    best = (machine, found, found + length)
                break
            cursor = stop
    return best


# -- qualifications and quotas ----------------------------------------------------------------


def qualification_for(member: User, machine: Machine, day: date) -> Qualification | None:
    """A qualification of `member` for `machine` (itself or its kind) valid on `day`."""
    candidates = Qualification.objects.filter(lab_id=machine.lab_id, member=member).filter(
        Q(machine=machine) | Q(machine__isnull=True, kind=machine.kind)
    )
    return next((q for q in candidates if q.valid_on(day)), None)


def qualifications_of_person(person: User, *, viewer: Viewer | None) -> QuerySet[Qualification]:
    """What labs `viewer` may see trained `person` on, the latest training first."""
    return (
        Qualification.objects.filter(member=person, lab__in=labs_visible_to(viewer).values("pk"))
        .select_related("lab", "machine")
        .order_by("-trained_on", "pk")
    )


def qualifications_of_lab(lab: Lab) -> QuerySet[Qualification]:
    return lab.qualifications.select_related("member", "machine", "trainer").order_by(
        "member__username", "-trained_on"
    )


def booked_minutes(
    member: User,
    machine: Machine,
    start: datetime,
    end: datetime,
    *,
    per_machine: bool,
    exclude_id: int | None = None,
) -> float:
    """Minutes of `member`'s active bookings within [start, end) in the machine's lab
    (or on the machine alone)."""
    rows = Booking.objects.filter(
        member=member, kind=Booking.Kind.BOOKING, status__in=Booking.ACTIVE, start__lt=end, end__gt=start
    )
    rows = rows.filter(machine=machine) if per_machine else rows.filter(machine__lab_id=machine.lab_id)
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return sum(timeline.minutes(i) for i in timeline.clip(rows.values_list("start", "end"), start, end))


# -- what a new booking is checked against ------------------------------------------------------


@dataclass(frozen=True)
class BookingContext:
    """Everything `booking_create` checks a request against, but the timeline itself."""

    machine: Machine  # with its lab
    role: str | None  # as `lab_role`
    credits_enabled: bool
    hours: list[tuple[int, time, time]]  # as `weekly_hours`
    closures: list[Closure]  # those overlapping the request, by start
    qualifications: list[Qualification]  # the member's for this machine or its kind, valid or not


@cache
def _booking_context_sql(vendor: str) -> tuple[str, list[Field | None]]:
    """`booking_context`'s query, and the fields whose values the ORM would convert as it
    reads them (by position; None for the others): built once from the models. Compiling
    the ORM's query for this one-row read cost four times running it (bench/bookings.py)."""
    qn = connection.ops.quote_name
    machine, lab = qn(Machine._meta.db_table), qn(Lab._meta.db_table)
    columns: list[str] = []
    for model, table in ((Machine, machine), (Lab, lab)):
        for field in model._meta.concrete_fields:
            columns.append(f"{table}.{qn(str(field.column))}")
    fields = [*Machine._meta.concrete_fields, *Lab._meta.concrete_fields]
    has_conversions = {index for index, _, _ in column_conversions(fields, connection)}
    converted_fields = [field if index in has_conversions else None for index, field in enumerate(fields)]
    role = (
        "SELECT CASE WHEN m.status = %s THEN 'pending' ELSE m.role END FROM machines_labmembership m "
        f"WHERE m.lab_id = {machine}.lab_id AND m.user_id = %s"
    )
    credits_on = f"EXISTS (SELECT 1 FROM machines_printsettings p WHERE p.lab_id = {machine}.lab_id AND p.credits_enabled)"
    hours = _json_select(
        "h.weekday, h.opens, h.closes", f"machines_openinghours h WHERE h.lab_id = {machine}.lab_id"
    )
    closures = _json_select(
        'c.start, c."end", c.reason',
        f'machines_closure c WHERE c.lab_id = {machine}.lab_id AND c.start < %s AND c."end" > %s',
    )
    qualifications = _json_select(
        "q.trained_on, q.expires_on",
        f"machines_qualification q WHERE q.lab_id = {machine}.lab_id AND q.member_id = %s "
        f"AND (q.machine_id = {machine}.id OR (q.machine_id IS NULL AND q.kind = {machine}.kind))",
    )
    parts = ", ".join(f"({part})" for part in (role, credits_on, hours, closures, qualifications))
    sql = (
        f"SELECT {', '.join(columns)}, {parts} FROM {machine} INNER JOIN {lab} ON ({machine}.lab_id = {lab}.id) "
        f"WHERE {machine}.id = %s"
    )
    return sql, converted_fields


_MACHINE_FIELDS = [f.attname for f in Machine._meta.concrete_fields]
_LAB_FIELDS = [f.attname for f in Lab._meta.concrete_fields]
_CONTEXT_COLUMNS = len(_MACHINE_FIELDS) + len(_LAB_FIELDS)


def booking_context(*, machine_id: int, member: User, start: datetime, end: datetime) -> BookingContext:
    """The machine, its lab and rules, the member's role, the lab's hours and the closures
    over [start, end), the member's qualifications for the machine or its kind and whether
    the lab uses credits: one query, however many rows each part has (`_json_select`)."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy looks it up again
    sql, converted_fields = _booking_context_sql(db.vendor)
    instant = db.ops.adapt_datetimefield_value
    params: list[Any] = [
        LabMembership.Status.PENDING.value,
        member.pk,
        instant(end),
        instant(start),
        member.pk,
        machine_id,
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"There is no machine {machine_id}.")
    values = converted(list(row[:_CONTEXT_COLUMNS]), column_conversions(converted_fields, db), db)
    machine = Machine.from_db(db.alias, _MACHINE_FIELDS, values[: len(_MACHINE_FIELDS)])
    machine.lab = Lab.from_db(db.alias, _LAB_FIELDS, values[len(_MACHINE_FIELDS) :])
    role, credits_on, hours, closures, qualifications = row[_CONTEXT_COLUMNS:]
    return BookingContext(
        machine=machine,
        role=role,
        credits_enabled=bool(credits_on),
        hours=_weekly(_json(hours)),
        closures=sorted(
            (
                Closure(lab=machine.lab, start=_instant(s), end=_instant(e), reason=reason)
                for s, e, reason in _json(closures) or ()
            ),
            key=lambda c: c.start,
        ),
        qualifications=[
            Qualification(trained_on=date.fromisoformat(t), expires_on=date.fromisoformat(e) if e else None)
            for t, e in _json(qualifications) or ()
        ],
    )


# -- bookings ---------------------------------------------------------------------------------


def bookings_of_member(user: User) -> QuerySet[Booking]:
    return (
        Booking.objects.filter(member=user)
        .select_related("machine", "machine__lab", "member")
        .order_by("-start")
    )


def bookings_of_lab(lab: Lab) -> QuerySet[Booking]:
    return Booking.objects.filter(machine__lab=lab).select_related("machine", "machine__lab", "member")


def booking_get(*, booking_id: int, user: User) -> Booking:
    """A booking its member or a manager of its lab may see; anyone else gets NotFound."""
    booking = (
        Booking.objects.select_related("machine", "machine__lab", "member").filter(pk=booking_id).first()
    )
    if booking is None or (booking.member_id != user.pk and lab_role(booking.machine.lab, user) != "manager"):
        raise NotFound(f"There is no booking {booking_id}.")
    return booking


@dataclass(frozen=True)
class Decisions:
    """What waits for a lab's managers (the Approvals badge)."""

    bookings: int
    flagged: int
    members: int
    print_jobs: int

    @property
    def total(self) -> int:
        return self.bookings + self.flagged + self.members + self.print_jobs


def lab_decisions(lab: Lab) -> Decisions:
    """Bookings and print jobs waiting for approval, bookings put in doubt, membership requests."""
    rows = Booking.objects.filter(machine__lab=lab)
    return Decisions(
        bookings=rows.filter(status=Booking.Status.PENDING).count(),
        flagged=rows.filter(needs_decision=True, status__in=Booking.ACTIVE).count(),
        members=lab.memberships.filter(status=LabMembership.Status.PENDING).count(),
        print_jobs=PrintJob.objects.filter(lab=lab, status=PrintJob.Status.PENDING_APPROVAL).count(),
    )


# -- spools -----------------------------------------------------------------------------------


def spools_of_lab(lab: Lab, *, archived: bool = False) -> QuerySet[Spool]:
    """The lab's stock (or its archived spools), with the printer each is loaded on."""
    return (
        Spool.objects.filter(lab=lab, archived_at__isnull=not archived)
        .select_related("printer__machine")
        .order_by("material", "colour", "pk")
    )


def spool_get(*, lab: Lab, spool_id: int) -> Spool:
    spool = Spool.objects.select_related("lab", "printer__machine").filter(lab=lab, pk=spool_id).first()
    if spool is None:
        raise NotFound(f"{lab.name} has no spool {spool_id}.")
    return spool


def lab_week(lab: Lab, monday: date) -> dict:
    """A week of the lab for its calendar: per day, its opening intervals, and per machine
    the timeline rows of each day (local times)."""
    zone = lab.zone
    days = [monday + timedelta(days=n) for n in range(7)]
    start = timeline.wall_clock(days[0], datetime.min.time(), zone)
    end = timeline.wall_clock(days[-1] + timedelta(days=1), datetime.min.time(), zone)
    open_by_day: dict[date, list[Interval]] = {d: [] for d in days}
    for s, e in open_intervals(lab, start, end):
        for d in days:
            day_start = timeline.wall_clock(d, datetime.min.time(), zone)
            day_end = timeline.wall_clock(d + timedelta(days=1), datetime.min.time(), zone)
            for cs, ce in timeline.clip([(s, e)], day_start, day_end):
                open_by_day[d].append((cs.astimezone(zone), ce.astimezone(zone)))
    machines = list(lab.machines.order_by("name"))
    rows = (
        Booking.objects.filter(machine__lab=lab, status__in=Booking.ACTIVE, start__lt=end, end__gt=start)
        .select_related("member")
        .order_by("start")
    )
    cells: dict[tuple[int, date], list[Booking]] = {}
    for row in rows:
        for d in days:
            day_start = timeline.wall_clock(d, datetime.min.time(), zone)
            day_end = timeline.wall_clock(d + timedelta(days=1), datetime.min.time(), zone)
            if row.start < day_end and row.end > day_start:
                cells.setdefault((row.machine_id, d), []).append(row)
    return {
        "days": [{"date": d, "open": open_by_day[d]} for d in days],
        "machines": [{"machine": m, "cells": [cells.get((m.pk, d), []) for d in days]} for m in machines],
        "start": start,
        "end": end,
    }


def feeds_of(user: User) -> QuerySet[CalendarFeed]:
    return CalendarFeed.objects.filter(owner=user).select_related("lab", "machine")


def feed_rows(feed: CalendarFeed) -> QuerySet[Booking] | None:
    """The timeline rows a feed shows, or None if the feed no longer works."""
    horizon_start = timezone.now() - timedelta(days=90)
    rows = Booking.objects.select_related("machine", "machine__lab", "member").filter(end__gte=horizon_start)
    if feed.scope == CalendarFeed.Scope.MEMBER:
        return rows.filter(member=feed.owner).exclude(status=Booking.Status.REFUSED)
    lab = feed.lab
    if lab is None or lab_role(lab, feed.owner) not in ("member", "manager"):
        return None
    rows = rows.filter(status__in=Booking.ACTIVE, machine__lab=lab)
    if feed.scope == CalendarFeed.Scope.MACHINE:
        rows = rows.filter(machine=feed.machine_id)
    return rows


# -- lab agents (machines/printing/agents.py) ------------------------------------------------
# Read here, below the pages, because the lab's settings page lists them: machines.views
# may not import machines.printing (the layers contract in pyproject.toml).


def agents_of_lab(lab: Lab, *, actor: User) -> QuerySet[LabAgent]:
    """The lab's agents, for its managers only: active ones first, each with the printers
    it drives (prefetched, by name)."""
    require_manager(lab, actor)
    return (
        LabAgent.objects.filter(lab=lab)
        .select_related("lab")
        .prefetch_related(Prefetch("machines", queryset=Machine.objects.order_by("name")))
        .order_by(F("revoked_at").asc(nulls_first=True), "name", "pk")
    )


def agent_of_lab(lab: Lab, *, actor: User, agent_id: int) -> LabAgent:
    """One of the lab's agents (revoked ones too), for its managers; another lab's is a 404."""
    agent = agents_of_lab(lab, actor=actor).filter(pk=agent_id).first()
    if agent is None:
        raise NotFound(f"{lab.name} has no lab agent {agent_id}.")
    return agent


@dataclass(frozen=True)
class AgentContact:
    """When an agent last synced, as a manager reads it: `never`, `recent` (within
    FABHUB_AGENT_SILENT_S) or `silent` (its printers then count as unreachable)."""

    state: str
    last_seen_at: datetime | None
    seconds_ago: int | None


def agent_contact(agent: LabAgent | None, *, now: datetime | None = None) -> AgentContact | None:
    if agent is None:
        return None
    if agent.last_seen_at is None:
        return AgentContact(state="never", last_seen_at=None, seconds_ago=None)
    ago = max(0, int(((now or timezone.now()) - agent.last_seen_at).total_seconds()))
    # The agent driver's rule too (agents.agent_silent_before): silent past the limit.
    state = "silent" if ago > settings.FABHUB_AGENT_SILENT_S else "recent"
    return AgentContact(state=state, last_seen_at=agent.last_seen_at, seconds_ago=ago)
