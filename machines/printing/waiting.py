"""What the dispatcher checks before it gives a queued job to a printer, and why a job waits.

The checks are small named predicates that answer with a sentence (what holds the job or
the printer back) or None (nothing does):

- `printer_blocker`: the printer takes no job now, whatever the job (not taking jobs, out
  of service, holding a job, bed not cleared, offline, booked by a person now);
- `match_blocker`: the printer does not have the job's material, colour or nozzle loaded;
- `job_blocker`: this job cannot start on this printer now (too big, not sliced for it, its
  owner not qualified, not enough time before the next booking, the lab closes first).

`dispatch_round` is the dispatcher's round: `dispatch.dispatch_tick` claims what it
decides (a job only when all three say None), and `waiting_reasons` plays it over the
whole queue with the same predicates and `Floor` (what the dispatcher knows at one
instant), so a job's reasons cannot disagree with the dispatcher.
Where the dispatcher reads with a query for speed (`dispatch.idle_printers`, its candidate
query), tests hold the query and the predicate to the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone

from hub.models import User
from machines import timeline
from machines.models import (
    Booking,
    Closure,
    Lab,
    Machine,
    OpeningHours,
    Printer,
    PrintGcode,
    PrintJob,
    PrintSettings,
    Qualification,
)
from machines.printing import jobs
from machines.printing import selectors as ps
from machines.printing.drivers import PrinterState
from machines.rows import Conversions, column_conversions, converted
from machines.selectors import closures_between, qualification_for, weekly_hours

S = PrintJob.Status
CANDIDATES_PER_PRINTER = 20
# How far ahead the dispatcher looks for the next row of a machine's timeline.
LOOKAHEAD = timedelta(days=14)

_ACTIVE_STATES = frozenset(s.value for s in PrinterState if s.has_active_job)


class QueuedJob(Protocol):
    """What the predicates and the round read of a queued job: a PrintJob, or the
    dispatcher's plain row of one (`dispatch.Candidate`)."""

    @property
    def pk(self) -> int: ...
    @property
    def owner_id(self) -> int: ...
    @property
    def owner(self) -> User: ...
    @property
    def size_mm(self) -> Any: ...
    @property
    def queued_at(self) -> datetime | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def material(self) -> str: ...
    @property
    def colour(self) -> str: ...
    @property
    def nozzle_mm(self) -> Decimal | None: ...


class SlicedFor(Protocol):
    """What the predicates read of a job's G-code for a printer: a PrintGcode, or the
    dispatcher's plain row of one (`dispatch.Sliced`)."""

    @property
    def estimated_seconds(self) -> int | None: ...


class SeenMachine(Protocol):
    """What the predicates read of a printer's machine: a Machine, or the dispatcher's
    plain row of one (`dispatch.IdleMachine`)."""

    @property
    def pk(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def lab_id(self) -> int: ...
    @property
    def lab(self) -> Lab: ...
    @property
    def requires_qualification(self) -> bool: ...
    @property
    def connection_secret(self) -> str: ...
    @property
    def agent_id(self) -> int | None: ...
    def get_status_display(self) -> str: ...


class SeenPrinter(Protocol):
    """What the predicates and the round read of a printer: a Printer, or the
    dispatcher's plain row of one (`dispatch.IdlePrinter`)."""

    @property
    def pk(self) -> int: ...
    @property
    def machine(self) -> SeenMachine: ...
    @property
    def accepts_jobs(self) -> bool: ...
    @property
    def bed_clear(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def seen_at(self) -> datetime | None: ...
    @property
    def material(self) -> str: ...
    @property
    def colour(self) -> str: ...
    @property
    def nozzle_mm(self) -> Decimal: ...
    @property
    def build_volume(self) -> tuple[float, float, float] | None: ...


# The round hands back the very objects its caller gave it (jobs, or the dispatcher's
# rows; printers, or the dispatcher's rows).
J = TypeVar("J", bound=QueuedJob)
P = TypeVar("P", bound=SeenPrinter)


# -- the lab's clock ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When a lab lets a print run, seen from one instant."""

    open_now: bool
    # Open now: it closes then (None: not within the look-ahead, or no hours at all).
    until: datetime | None = None
    # The closure that ends the open time (or holds the lab closed now), if one does.
    closure: str | None = None
    # Closed now: it opens then (None: not within the look-ahead).
    opens_at: datetime | None = None


ALWAYS_OPEN = Window(open_now=True)


def lab_window(
    lab: Lab,
    now: datetime,
    *,
    closures: list[Closure] | None = None,
    hours: list[tuple[int, time, time]] | None = None,
) -> Window:
    """The lab's opening hours (`hours`, as `weekly_hours` gives them, when already read)
    minus its closures, around `now`. A lab that never gave opening hours does not limit
    prints (its queue ran round the clock before hours applied to prints)."""
    if hours is None:
        hours = weekly_hours(lab)
    if not hours:
        return ALWAYS_OPEN
    start, end = now - timedelta(days=1), now + LOOKAHEAD
    if closures is None:
        closures = closures_between(lab, start, end)
    intervals = timeline.subtract(
        timeline.opening_intervals(hours, lab.zone, start, end), [(c.start, c.end) for c in closures]
    )
    for opens, closes in intervals:
        if opens <= now < closes:
            ending = next((c for c in closures if c.start == closes), None)
            return Window(
                open_now=True,
                until=closes if closes < end else None,
                closure=(ending.reason or "a closure") if ending else None,
            )
        if opens > now:
            break
    covering = next((c for c in closures if c.start <= now < c.end), None)
    later = next((opens for opens, _ in intervals if opens > now), None)
    return Window(
        open_now=False, opens_at=later, closure=(covering.reason or "a closure") if covering else None
    )


# -- what the dispatcher knows at one instant --------------------------------------------------


@dataclass
class Floor:
    """The dispatcher's view of some printers at `now`: each machine's first timeline row
    still to end, the jobs on the printers, and (read once per lab, when first needed) the
    labs' settings and open windows and the owners' qualifications."""

    now: datetime
    rows: dict[int, Booking]
    holding: dict[int, PrintJob]
    starving_before: datetime
    _settings: dict[int, PrintSettings] = field(default_factory=dict)
    _windows: dict[int, Window] = field(default_factory=dict)
    _qualified: dict[tuple[int, int], bool] = field(default_factory=dict)
    # Read ahead for many labs at once (`waiting_reasons` over a person's jobs in many
    # labs): opening hours and closures by lab, qualifications by (member, lab).
    _hours: dict[int, list[tuple[int, time, time]]] | None = None
    _closures: dict[int, list[Closure]] | None = None
    _qualifications: dict[tuple[int, int], list[Qualification]] | None = None

    @classmethod
    def read(
        cls, *, now: datetime, printers: list[Printer], holding: dict[int, PrintJob] | None = None
    ) -> Floor:
        rows: dict[int, Booking] = {}
        found = (
            Booking.objects.filter(
                machine_id__in=[p.pk for p in printers],
                status__in=Booking.ACTIVE,
                end__gt=now,
                start__lt=now + LOOKAHEAD,
            )
            .order_by("machine_id", "start")
            .only("pk", "machine_id", "kind", "start", "end", "member_id")
        )
        # Active rows never overlap, so the first by start is the one that runs now, if any.
        for row in found:
            rows.setdefault(row.machine_id, row)
        return cls.at(now=now, rows=rows, holding=holding)

    @classmethod
    def at(
        cls, *, now: datetime, rows: dict[int, Booking], holding: dict[int, PrintJob] | None = None
    ) -> Floor:
        """The view at `now` from each machine's first active row still to end (`rows`, by
        machine id), however they were read (the dispatcher reads them with its printers)."""
        starving_before = now - timedelta(hours=settings.FABHUB_PRINT_STARVATION_HOURS)
        return cls(now=now, rows=rows, holding=holding or {}, starving_before=starving_before)

    def settings_of(self, lab: Lab) -> PrintSettings:
        if lab.pk not in self._settings:
            self._settings[lab.pk] = ps.print_settings_of(lab)
        return self._settings[lab.pk]

    def window_of(self, lab: Lab) -> Window:
        if lab.pk not in self._windows:
            closures = self._closures.get(lab.pk, []) if self._closures is not None else None
            hours = self._hours.get(lab.pk, []) if self._hours is not None else None
            self._windows[lab.pk] = lab_window(lab, self.now, closures=closures, hours=hours)
        return self._windows[lab.pk]

    def qualified(self, job: QueuedJob, machine: SeenMachine) -> bool:
        key = (job.owner_id, machine.pk)
        if key not in self._qualified:
            today = self.now.astimezone(machine.lab.zone).date()
            if self._qualifications is not None:
                self._qualified[key] = any(
                    (q.machine_id == machine.pk or (q.machine_id is None and q.kind == machine.kind))
                    and q.valid_on(today)
                    for q in self._qualifications.get((job.owner_id, machine.lab_id), [])
                )
            else:
                # Only a Machine comes here: the dispatcher reads ahead for its plain rows.
                assert isinstance(machine, Machine)
                self._qualified[key] = qualification_for(job.owner, machine, today) is not None
        return self._qualified[key]

    def read_ahead(self, *, labs: list[Lab], owner_ids: set[int]) -> None:
        """Read the labs' settings, opening hours, closures and the owners' qualifications
        there in a few queries, so many labs cost no more than one."""
        lab_ids = {lab.pk for lab in labs}
        # A lab read with its settings (`select_related`, as the dispatcher reads them) has
        # them cached, None when it has none: only the others are read here.
        known = {lab.pk for lab in labs if Lab.print_settings.is_cached(lab)}
        unread = lab_ids - known
        found = {row.lab_id: row for row in PrintSettings.objects.filter(lab_id__in=unread)} if unread else {}
        for lab in labs:
            row: PrintSettings | None = (
                getattr(lab, "print_settings", None) if lab.pk in known else found.get(lab.pk)
            )
            self._settings.setdefault(lab.pk, row or PrintSettings(lab=lab))
        # The labs' hours in one read (as `weekly_hours` gives them), not a queryset per lab.
        self._hours = {}
        for lab_id, weekday, opens, closes in _opening_hours(lab_ids):
            self._hours.setdefault(lab_id, []).append((weekday, opens, closes))
        start, end = self.now - timedelta(days=1), self.now + LOOKAHEAD
        self._closures = {}
        # Closures matter only where hours do (a lab without hours is always open).
        with_hours = set(self._hours)
        if with_hours:
            for closure in _closures_between(with_hours, start, end):
                self._closures.setdefault(closure.lab_id, []).append(closure)
        self._qualifications = {}
        if owner_ids:
            for qualification in Qualification.objects.filter(lab_id__in=lab_ids, member_id__in=owner_ids):
                self._qualifications.setdefault((qualification.member_id, qualification.lab_id), []).append(
                    qualification
                )


# Each database connection's converters of the read-ahead's hand-written reads, by read.
_CONVERSIONS: WeakKeyDictionary[BaseDatabaseWrapper, dict[str, Conversions]] = WeakKeyDictionary()


def _read_rows(
    model: type[Model], names: tuple[str, ...], where: str, order: str, params: list[Any]
) -> list[list[Any]]:
    """The rows of one hand-written read of `model`: the columns of fields `names`, the
    conditions `where` and order `order` written with `{name}` for each field's column,
    each value through its field's database converters (`machines.rows`). The read-ahead
    reads this way: each queryset took ~0.25 ms of CPU to build, far more than the
    database took to answer it, and a tick reads them for a single printer too."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = [cast(Field, model._meta.get_field(name)) for name in names]
    key = f"{model._meta.label}:{','.join(names)}"
    known = _CONVERSIONS.setdefault(db, {})
    if key not in known:
        known[key] = column_conversions(fields, db)
    quoted = {f.name: db.ops.quote_name(cast(str, f.column)) for f in fields}
    sql = (
        f"SELECT {', '.join(quoted.values())} FROM {db.ops.quote_name(model._meta.db_table)} "
        f"WHERE {where.format(**quoted)} ORDER BY {order.format(**quoted)}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return [converted(list(row), known[key], db) for row in cursor.fetchall()]


def _opening_hours(lab_ids: set[int]) -> list[list[Any]]:
    """The opening hours of these labs as rows of (lab id, weekday, opens, closes), by lab
    then as `weekly_hours` orders them (weekday, opening)."""
    if not lab_ids:
        return []
    marks = ", ".join(["%s"] * len(lab_ids))
    return _read_rows(
        OpeningHours,
        ("lab", "weekday", "opens", "closes"),
        f"{{lab}} IN ({marks})",
        "{lab}, {weekday}, {opens}",
        [*lab_ids],
    )


def _closures_between(lab_ids: set[int], start: datetime, end: datetime) -> list[Closure]:
    """The closures of these labs over [start, end), by start (as `closures_between` reads
    them lab by lab), as models: `lab_window` takes them."""
    names = tuple(f.name for f in Closure._meta.concrete_fields)
    marks = ", ".join(["%s"] * len(lab_ids))
    bound = cast(Field, Closure._meta.get_field("start"))
    db = connections[DEFAULT_DB_ALIAS]
    params = [*lab_ids, bound.get_db_prep_value(end, db), bound.get_db_prep_value(start, db)]
    rows = _read_rows(
        Closure, names, f"{{lab}} IN ({marks}) AND {{start}} < %s AND {{end}} > %s", "{start}, {id}", params
    )
    attnames = [f.attname for f in Closure._meta.concrete_fields]
    return [Closure.from_db(db.alias, attnames, row) for row in rows]


# -- the predicates ----------------------------------------------------------------------------


def _at(instant: datetime, lab: Lab, now: datetime) -> str:
    """'15:00', or '09:00 (Monday)' on another day, in the lab's zone."""
    local = instant.astimezone(lab.zone)
    if local.date() == now.astimezone(lab.zone).date():
        return f"{local:%H:%M}"
    return f"{local:%H:%M} ({local:%A})"


def about(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"about {hours} h {rest:02d} min"
    return f"about {hours} h" if hours else f"about {minutes} min"


def printer_state_blocker(printer: SeenPrinter, *, holding: PrintJob | None, now: datetime) -> str | None:
    """Why the printer, as recorded, takes no job (None: it may). The conditions of
    `dispatch.idle_printers`, sentence by sentence."""
    name = printer.machine.name
    machine = printer.machine
    if not printer.accepts_jobs:
        return f"{name} is not taking jobs"
    if machine.status != Machine.Status.AVAILABLE:
        return f"{name} is {machine.get_status_display().lower()}"
    if holding is not None:
        return _holding_sentence(name, holding)
    if not printer.bed_clear:
        return f"bed not cleared on {name}"
    if not machine.connection_secret and machine.agent_id is None:
        if printer.state in _ACTIVE_STATES:
            return f"{name} is recorded busy by its operator"
        return None
    fresh = now - timedelta(seconds=settings.FABHUB_PRINT_STATE_MAX_AGE_S)
    if printer.state == PrinterState.IDLE.value:
        if printer.seen_at is not None and printer.seen_at >= fresh:
            return None
        return f"{name} has not answered for a while"
    if printer.state == PrinterState.OFFLINE.value:
        return f"{name} is offline"
    if printer.state == PrinterState.ERROR.value:
        return f"{name} reports an error and needs a manager"
    if printer.state in _ACTIVE_STATES:
        return f"{name} is busy with a print started at the printer"
    return f"{name} is not ready ({printer.state})"


def _holding_sentence(name: str, job: PrintJob) -> str:
    if job.status == S.AWAITING_REMOVAL:
        return f"bed not cleared on {name} (job #{job.pk} waits to be collected)"
    if job.status in (S.PRINTING, S.PAUSED):
        left = ps.seconds_left(job)
        paused = "paused on" if job.status == S.PAUSED else "busy with"
        return f"{name} is {paused} job #{job.pk}" + (f" ({about(left)} left)" if left is not None else "")
    if job.status == S.AWAITING_OPERATOR:
        return f"{name} waits for an operator to start job #{job.pk}"
    if job.status == S.PRINTER_LOST:
        return f"{name} stopped answering while printing job #{job.pk}"
    return f"{name} is being sent job #{job.pk}"


def timeline_blocker(printer: SeenPrinter, floor: Floor) -> str | None:
    """A row of the machine's timeline that runs now (a person's booking, maintenance)."""
    row = floor.rows.get(printer.pk)
    if row is None or row.start > floor.now:
        return None
    name, lab = printer.machine.name, printer.machine.lab
    until = _at(row.end, lab, floor.now)
    if row.kind == Booking.Kind.MAINTENANCE:
        return f"{name} is in maintenance until {until}"
    if row.kind == Booking.Kind.PRINT_JOB:
        return f"{name} holds a print until {until}"
    return f"{name} is booked until {until}"


def printer_blocker(printer: SeenPrinter, floor: Floor) -> str | None:
    """Why the printer takes no job now, whatever the job."""
    return printer_state_blocker(
        printer, holding=floor.holding.get(printer.pk), now=floor.now
    ) or timeline_blocker(printer, floor)


@dataclass(frozen=True)
class Mismatch:
    what: str  # material, colour or nozzle
    wanted: str
    loaded: str


def _mm(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def match_blocker(job: QueuedJob, printer: SeenPrinter) -> Mismatch | None:
    """The job's material, colour and nozzle against what the printer has loaded (the
    dispatcher's candidate query: same kind, same material, any nozzle or this one, any
    colour or this one)."""
    if job.material != printer.material:
        return Mismatch("material", job.material, printer.material)
    if job.nozzle_mm is not None and Decimal(job.nozzle_mm) != Decimal(printer.nozzle_mm):
        return Mismatch("nozzle", _mm(job.nozzle_mm), _mm(printer.nozzle_mm))
    if job.colour and job.colour != printer.colour:
        return Mismatch("colour", job.colour, printer.colour or "no colour recorded")
    return None


def job_blocker(job: QueuedJob, printer: SeenPrinter, floor: Floor, gcode: SlicedFor | None) -> str | None:
    """Why this job cannot start on this printer now (the printer itself being free and
    loaded right): size, G-code for its profile, qualification, room before the next row
    of its timeline, the lab's hours."""
    machine = printer.machine
    name, lab = machine.name, machine.lab
    if not ps.job_fits(job.size_mm, printer):
        return f"too big for {name}"
    if gcode is None:
        return f"not sliced for {name} yet"
    if machine.requires_qualification and not floor.qualified(job, machine):
        return f"{job.owner.username} is not qualified on {name}"
    span = jobs.timeline_span(gcode.estimated_seconds)
    row = floor.rows.get(printer.pk)
    if row is not None and row.start > floor.now and span > row.start - floor.now:
        what = "in maintenance" if row.kind == Booking.Kind.MAINTENANCE else "booked"
        return (
            f"{name} is {what} from {_at(row.start, lab, floor.now)}: "
            f"not enough time for this print ({about(span.total_seconds())})"
        )
    return hours_blocker(lab, floor, span)


def hours_blocker(lab: Lab, floor: Floor, span: timedelta) -> str | None:
    """A print must end (estimate and margin) before the lab closes or a closure starts,
    unless the lab lets prints run unattended."""
    if floor.settings_of(lab).unattended_overnight:
        return None
    window = floor.window_of(lab)
    if not window.open_now:
        why = f"closed ({window.closure})" if window.closure else "closed"
        if window.opens_at is None:
            return f"lab {why}"
        return f"lab {why} until {_at(window.opens_at, lab, floor.now)}"
    if window.until is not None and floor.now + span > window.until:
        at = _at(window.until, lab, floor.now)
        closes = f"closes for {window.closure} at {at}" if window.closure else f"closes at {at}"
        return (
            f"the lab {closes}, before this print ({about(span.total_seconds())}) could finish; "
            "unattended prints are not allowed"
        )
    return None


# -- the dispatcher's order --------------------------------------------------------------------


def candidate_order(queued: Iterable[J], starving_before: datetime) -> list[J]:
    """The order in which a printer looks at the queued jobs it could take, and the ones
    it looks at in one round: those waiting since before `starving_before` first (oldest
    first), then by priority and age; at most CANDIDATES_PER_PRINTER of each (as
    `dispatch._candidates` reads them off the index)."""
    rows = list(queued)
    starving = sorted(
        (j for j in rows if j.queued_at is not None and j.queued_at < starving_before),
        key=lambda j: (j.queued_at, j.pk),
    )[:CANDIDATES_PER_PRINTER]
    seen = {j.pk for j in starving}
    ranked = sorted(rows, key=_rank)[:CANDIDATES_PER_PRINTER]
    return starving + [j for j in ranked if j.pk not in seen]


# What a round shows about one printer's turn: the printer, its candidates in order, the
# index of the job it took (None: none), and the ids of the jobs taken before its turn.
Look = Callable[[P, list[J], int | None, set[int]], None]


def dispatch_round(
    *,
    free: list[P],
    candidates_of: Callable[[P], Iterable[J]],
    floor: Floor,
    gcode_for: Callable[[J, P], SlicedFor | None],
    watch: Look[P, J] | None = None,
) -> dict[int, J]:
    """One round of the dispatcher's decisions: each free printer, in the given order (by
    id), takes the first job of its candidates (`candidate_order` of the queued jobs it
    matches that no earlier printer took) that `job_blocker` lets through. Returns the
    job each printer takes, by printer id. `dispatch.dispatch_tick` claims what this
    returns; `waiting_reasons` replays it to say why the others wait.

    `candidates_of(printer)` gives the queued jobs the printer matches: all of them, or
    (the dispatcher) the first ones in the dispatcher's orders, in which case `watch`
    is told how far each printer looked (its set of taken jobs is not to be kept)."""
    taken: set[int] = set()
    went_to: dict[int, J] = {}
    for printer in free:
        untaken = [j for j in candidates_of(printer) if j.pk not in taken]
        order = candidate_order(untaken, floor.starving_before)
        took = None
        for index, job in enumerate(order):
            if job_blocker(job, printer, floor, gcode_for(job, printer)) is None:
                took = index
                break
        if watch is not None:
            watch(printer, order, took, taken)
        if took is not None:
            taken.add(order[took].pk)
            went_to[printer.pk] = order[took]
    return went_to


def _rank(job: QueuedJob) -> tuple:
    # -priority, then queued_at (NULLs last, as PostgreSQL orders them ascending), then pk.
    return (-job.priority, job.queued_at is None, job.queued_at or datetime.min, job.pk)


# -- why a job waits ---------------------------------------------------------------------------


def why_waiting(job: PrintJob, *, now: datetime | None = None) -> list[str]:
    """Why `job` has not started (empty: nothing holds it back; it starts at the next round)."""
    return waiting_reasons([job], now=now)[job.pk]


def waiting_reasons(rows: Iterable[PrintJob], *, now: datetime | None = None) -> dict[int, list[str]]:
    """Per job id, why it waits: approval, preparation, or for a queued job what the
    dispatcher's predicates say about each printer of its lab and kind. A few queries per
    lab, whatever the number of jobs."""
    now = now or timezone.now()
    result: dict[int, list[str]] = {}
    queued: dict[int, list[PrintJob]] = {}
    for job in rows:
        if job.status == S.PENDING_APPROVAL:
            result[job.pk] = ["awaiting approval by a manager"]
        elif job.status == S.PREPARING:
            result[job.pk] = ["being prepared: the hub reads or slices the file"]
        elif job.status == S.QUEUED:
            queued.setdefault(job.lab_id, []).append(job)
        else:
            result[job.pk] = []
    reasons_by_lab = _labs_reasons(set(queued), now) if queued else {}
    for lab_id, waiting in queued.items():
        reasons = reasons_by_lab.get(lab_id, {})
        for job in waiting:
            # A job that left the queue since the caller read it waits for nothing.
            result[job.pk] = reasons.get(job.pk, [])
    return result


def _labs_reasons(lab_ids: set[int], now: datetime) -> dict[int, dict[int, list[str]]]:
    """`_lab_reasons` for several labs, their rows read once for all of them."""
    printers = list(
        Printer.objects.filter(machine__lab_id__in=lab_ids)
        .select_related("machine", "machine__lab")
        .order_by("pk")
    )
    holding = {
        j.machine_id: j
        for j in PrintJob.objects.filter(
            machine_id__in=[p.pk for p in printers], status__in=PrintJob.ON_PRINTER
        ).select_related("gcode")
        if j.machine_id is not None
    }
    floor = Floor.read(now=now, printers=printers, holding=holding)
    queue = list(PrintJob.objects.filter(lab_id__in=lab_ids, status=S.QUEUED).select_related("owner"))
    floor.read_ahead(labs=[p.machine.lab for p in printers], owner_ids={j.owner_id for j in queue})
    gcodes: dict[tuple[int, str], PrintGcode] = {
        (g.job_id, g.profile_key): g for g in PrintGcode.objects.filter(job_id__in=[j.pk for j in queue])
    }
    return {
        lab_id: _lab_reasons(
            floor=floor,
            printers=[p for p in printers if p.machine.lab_id == lab_id],
            queue=[j for j in queue if j.lab_id == lab_id],
            gcodes=gcodes,
        )
        for lab_id in lab_ids
    }


def _lab_reasons(
    *, floor: Floor, printers: list[Printer], queue: list[PrintJob], gcodes: dict[tuple[int, str], PrintGcode]
) -> dict[int, list[str]]:
    """Play one dispatcher round over the lab's printers (in the dispatcher's order) with
    the same predicates, then say for each queued job what held it back on each printer."""

    def gcode_for(job: PrintJob, printer: Printer) -> PrintGcode | None:
        return gcodes.get((job.pk, printer.profile_key)) or gcodes.get((job.pk, ""))

    def loaded_for(printer: Printer) -> list[PrintJob]:
        return [
            j for j in queue if j.machine_kind == printer.machine.kind and match_blocker(j, printer) is None
        ]

    # The round, as dispatch_tick plays it (the same function).
    free = [p for p in printers if printer_blocker(p, floor) is None]
    went_to = dispatch_round(free=free, candidates_of=loaded_for, floor=floor, gcode_for=gcode_for)
    taken = {job.pk for job in went_to.values()}

    reasons: dict[int, list[str]] = {}
    for job in queue:
        if job.pk in taken:
            reasons[job.pk] = []
            continue
        relevant = [p for p in printers if p.machine.kind == job.machine_kind]
        if not relevant:
            kind = (
                Machine.Kind(job.machine_kind).label
                if job.machine_kind in Machine.Kind.values
                else job.machine_kind
            )
            reasons[job.pk] = [f"no printer of this lab takes {kind} jobs"]
            continue
        mismatched: dict[str, list[tuple[Printer, Mismatch]]] = {}
        sentences: list[str] = []
        for printer in relevant:
            mismatch = match_blocker(job, printer)
            if mismatch is not None:
                mismatched.setdefault(mismatch.what, []).append((printer, mismatch))
                continue
            blocker = printer_blocker(printer, floor) or job_blocker(
                job, printer, floor, gcode_for(job, printer)
            )
            if blocker is None:
                blocker = _behind(job, printer, floor, loaded_for(printer), went_to, gcode_for)
            sentences.append(blocker)
        every = sum(len(v) for v in mismatched.values()) == len(relevant)
        loaded = [_mismatch_sentence(what, pairs, every) for what, pairs in mismatched.items()]
        reasons[job.pk] = list(dict.fromkeys(loaded + sentences))
    return reasons


def _mismatch_sentence(what: str, pairs: list[tuple[Printer, Mismatch]], every: bool) -> str:
    wanted = pairs[0][1].wanted
    which = "no printer" if every else "no idle printer"
    has = ", ".join(
        f"{p.machine.name} has {m.loaded}" + (" mm" if what == "nozzle" else "") for p, m in pairs
    )
    if what == "nozzle":
        return f"{which} with a {wanted} mm nozzle — {has}"
    return f"{which} with {wanted} loaded — {has}"


def _behind(
    job: PrintJob,
    printer: Printer,
    floor: Floor,
    candidates: list[PrintJob],
    went_to: dict[int, PrintJob],
    gcode_for: Callable[[PrintJob, Printer], PrintGcode | None],
) -> str:
    """The job could start on `printer`, which goes to another job first this round (or
    does not reach it: the dispatcher looks at a limited number of jobs per round)."""
    name = printer.machine.name
    if printer.pk not in went_to:
        return f"{name} looks at its first {CANDIDATES_PER_PRINTER} jobs each round; this one is further back"
    ahead = []
    for other in _full_order(candidates, floor):
        if other.pk == job.pk:
            break
        if job_blocker(other, printer, floor, gcode_for(other, printer)) is None:
            ahead.append(other)
    ahead = ahead or [went_to[printer.pk]]
    count = f"{len(ahead)} job{'s' if len(ahead) > 1 else ''}"
    if all(o.priority > job.priority for o in ahead):
        return f"behind {count} of higher priority for {name}"
    return f"behind {count} queued before it for {name}"


def _full_order(candidates: list[PrintJob], floor: Floor) -> list[PrintJob]:
    """The dispatcher's order without its per-round limit: starving jobs first, then the rest."""
    starving = sorted(
        (j for j in candidates if j.queued_at is not None and j.queued_at < floor.starving_before),
        key=lambda j: (j.queued_at, j.pk),
    )
    seen = {j.pk for j in starving}
    return starving + sorted((j for j in candidates if j.pk not in seen), key=_rank)
