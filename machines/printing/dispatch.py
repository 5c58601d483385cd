"""The print queue's moving parts: the dispatcher, the send task, the poller, the sweeper.

- `dispatch_tick` gives each idle printer (bed clear, not booked by a person now, not
  holding a job) the best queued job it can take whose estimate fits before the
  machine's next timeline row and, unless the lab allows unattended prints, before the
  lab closes. What it checks are the predicates of `machines.printing.waiting`, which
  also say why a job waits. The claim is one transaction: the machine's timeline
  lock, a conditional update of the job (`status=queued` → `dispatching`, with a fresh
  `dispatch_token`) and the job's row on the timeline. The printer is told only after
  that commits (`print_job_send`, queued on commit); a printer without network control is
  handed its job in the claim itself (its operator's record is a row of the same database). Two dispatchers on two machines
  never start one job twice: one of them loses the conditional update (on PostgreSQL
  it does not even wait for the row: `SELECT … FOR UPDATE SKIP LOCKED`).
- `print_job_send` talks to the printer through its driver and records what happened.
- `printer_poll` asks each networked printer how it is (in parallel, each with the
  driver's timeouts, so an offline printer never slows the others) and reconciles the
  job on it: progress, finished, failed, lost, found again.
- `print_queue_sweep` takes over work whose worker died: jobs stuck "sending", jobs
  stuck "preparing", timeline rows no job holds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache, cached_property
from typing import Any
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    Case,
    Exists,
    F,
    Field,
    Model,
    OuterRef,
    Q,
    When,
)
from django.utils import timezone

from hub.exceptions import Conflict
from hub.models import User
from hub.queue import enqueue
from machines.models import (
    Booking,
    Lab,
    LabAgent,
    Machine,
    Printer,
    PrintGcode,
    PrintJob,
    PrintRecord,
    PrintSettings,
)
from machines.notifications import notifications_about, notify
from machines.printing import jobs
from machines.printing.connections import driver_for_machine
from machines.printing.drivers import PrinterDriver, PrinterError, PrinterState, PrinterStatus
from machines.printing.files import gcode_path
from machines.printing.waiting import (
    CANDIDATES_PER_PRINTER,
    Floor,
    dispatch_round,
    match_blocker,
    printer_blocker,
)
from machines.printing.waiting import LOOKAHEAD as LOOKAHEAD
from machines.rows import Conversions, column_conversions, converted
from machines.selectors import collision
from machines.services import timeline_insert, timeline_lock

logger = logging.getLogger(__name__)

S = PrintJob.Status
CONNECT_RETRY = timedelta(seconds=60)
POLL_LEASE = timedelta(seconds=90)


# -- what the printers say ---------------------------------------------------------------


def _observed(printer_id: int, status: PrinterStatus) -> None:
    now = timezone.now()
    Printer.objects.filter(pk=printer_id).update(
        state=status.state.value,
        progress=status.progress,
        job_name=(status.job_name or "")[:255],
        temperatures={
            name: {"actual": t.actual, "target": t.target} for name, t in status.temperatures.items()
        },
        message=status.message[:500],
        seen_at=now,
        state_changed_at=Case(When(~Q(state=status.state.value), then=now), default=F("state_changed_at")),
    )


def _unreachable(printer_id: int, error: PrinterError) -> None:
    """A printer that does not answer is offline; one that answers with a refusal needs a person."""
    now = timezone.now()
    state = PrinterState.OFFLINE.value if error.retryable else PrinterState.ERROR.value
    Printer.objects.filter(pk=printer_id).update(
        state=state,
        message=error.message[:500],
        temperatures={},
        progress=None,
        state_changed_at=Case(When(~Q(state=state), then=now), default=F("state_changed_at")),
        connect_tried_at=None,  # so the first answer after this connects it at once
    )


# -- dispatching -----------------------------------------------------------------------------

# What the candidate read selects of a job: what the predicates and the claim use.
CANDIDATE_FIELDS = (
    "pk",
    "owner_id",
    "size_mm",
    "queued_at",
    "priority",
    "path",
    "copies_done",
    "lab_id",
    "machine_kind",
    "material",
    "colour",
    "nozzle_mm",
)
# Rounds of one tick: a printer whose chosen job another dispatcher took meanwhile looks
# again (with fresh reads) in the next round.
ROUNDS = 3
# Jobs each group reads beyond one per printer that may take them (see `_plan`).
LOOK_AHEAD = 3
# Index reads per candidate statement (SQLite allows 500 terms in one compound SELECT).
TERMS_PER_READ = 200


# What the idle read selects of a printer and of its machine: what the predicates
# (`waiting.SeenPrinter`, `waiting.SeenMachine`), the round and the claim read of them,
# in the order of `IdlePrinter`'s and `IdleMachine`'s fields.
IDLE_PRINTER_FIELDS = (
    "machine",
    "accepts_jobs",
    "bed_clear",
    "state",
    "seen_at",
    "material",
    "colour",
    "nozzle_mm",
    "slicer_profile",
)
IDLE_MACHINE_FIELDS = (
    "name",
    "kind",
    "status",
    "lab",
    "work_x_mm",
    "work_y_mm",
    "work_z_mm",
    "requires_qualification",
    "connection_secret",
    "agent",
)


@dataclass(slots=True, eq=False)
class IdleMachine:
    """The machine of an idle printer as the dispatcher reads it: a plain row of what the
    predicates (`waiting.SeenMachine`) and the claim read of it, its key (its printer's)
    then IDLE_MACHINE_FIELDS in that order, and its lab (a model, with its print
    settings). Not a model instance: building 50 printers and their machines through
    `Model.from_db` took ~0.6 ms, more than the statement that read them."""

    pk: int
    name: str
    kind: str
    status: str
    lab_id: int
    work_x_mm: int | None
    work_y_mm: int | None
    work_z_mm: int | None
    requires_qualification: bool
    # Write-only, as on the model: never in a log line that formats the machine.
    connection_secret: str = field(repr=False)
    agent_id: int | None
    lab: Lab = field(init=False)

    def __str__(self) -> str:
        return self.name  # as Machine's

    @property
    def has_connection(self) -> bool:
        return _MACHINE_HAS_CONNECTION(self)

    def get_status_display(self) -> str:
        return str(dict(_field(Machine, "status").flatchoices).get(self.status, self.status))


@dataclass(slots=True, eq=False)
class IdlePrinter:
    """An idle printer as the dispatcher reads it: a plain row of what the predicates
    (`waiting.SeenPrinter`), the round and the claim read of it, IDLE_PRINTER_FIELDS in
    that order (the printer's key is its machine's), after its machine (`IdleMachine`)."""

    machine: IdleMachine
    pk: int
    accepts_jobs: bool
    bed_clear: bool
    state: str
    seen_at: datetime | None
    material: str
    colour: str
    nozzle_mm: Decimal
    slicer_profile: str

    @property
    def build_volume(self) -> tuple[float, float, float] | None:
        return _PRINTER_BUILD_VOLUME(self)

    @property
    def profile_key(self) -> str:
        return _PRINTER_PROFILE_KEY(self)


# The models' own definitions, read off the plain rows (they read only what the rows
# hold): one source for what a printer's volume and G-code profile are.
_MACHINE_HAS_CONNECTION = Machine.__dict__["has_connection"].fget
_PRINTER_BUILD_VOLUME = Printer.__dict__["build_volume"].fget
_PRINTER_PROFILE_KEY = Printer.__dict__["profile_key"].fget


# What a printer says while a job occupies it.
_BUSY_STATES = [s.value for s in PrinterState if s.has_active_job]
# A printer without network control whose operator's record says it is busy.
_RECORDED_BUSY = Q(machine__connection_secret="", machine__agent__isnull=True, state__in=_BUSY_STATES)


def idle_printers(
    *, now: datetime, lab_id: int | None = None, machine_ids: Iterable[int] | None = None
) -> list[IdlePrinter]:
    """Printers that may take a job now: in service, taking jobs, bed clear, holding no
    job, and (if networked) seen idle recently. The query of `waiting.printer_state_blocker`
    (tests hold the two to the same answer). See `_idle_read`."""
    return _idle_read(now=now, lab_id=lab_id, machine_ids=machine_ids).printers


@dataclass(frozen=True)
class Idle:
    """What `_idle_read` found: the idle printers, and by machine the first active row of
    each one's timeline still to end within `waiting.LOOKAHEAD` (what `Floor.read` reads)."""

    printers: list[IdlePrinter]
    timelines: dict[int, Booking]


def _idle_read(*, now: datetime, lab_id: int | None = None, machine_ids: Iterable[int] | None = None) -> Idle:
    """The idle printers (`idle_printers`) and their machines' next timeline rows.

    One hand-written statement (`_idle_sql`: a queryset with these conditions cost more
    to build than the database took to answer it; the timeline row is a correlated
    subquery per idle printer, one range of the active rows' (machine, start) index), its rows
    made into plain rows of printers and their machines (`IdlePrinter`) and timeline rows
    as a queryset makes them (`Model.from_db`); the machines of a lab share one Lab, read
    with its print settings (a lab without reads as None)."""
    sql, row_fields = _idle_sql()
    seen = _field(Printer, "seen_at")
    fresh = seen.get_db_prep_value(now - timedelta(seconds=settings.FABHUB_PRINT_STATE_MAX_AGE_S), connection)
    synced = seen.get_db_prep_value(now - timedelta(seconds=settings.FABHUB_AGENT_SILENT_S), connection)
    end = _field(Booking, "end")
    idle = PrinterState.IDLE.value
    params: list[Any] = [True, True, Machine.Status.AVAILABLE.value, *_BUSY_STATES]
    params += [idle, fresh, idle, False, synced, *PrintJob.ON_PRINTER]
    more = ""
    if lab_id is not None:
        more += " AND m.lab_id = %s"
        params.append(lab_id)
    if machine_ids is not None:
        ids: list[int | None] = [*machine_ids] or [None]  # none: IN (NULL) matches nothing
        more += f" AND p.machine_id IN ({_marks(ids)})"
        params += ids
    params += [*Booking.ACTIVE, end.get_db_prep_value(now, connection)]
    params += [end.get_db_prep_value(now + LOOKAHEAD, connection)]
    sql = sql.replace(_MORE_CONDITIONS, more, 1)
    fields = [
        *(_field(Printer, name) for name in IDLE_PRINTER_FIELDS),
        *(_field(Machine, name) for name in IDLE_MACHINE_FIELDS),
        *row_fields,
    ]
    db, rows = _fetch("idle", sql, params, fields)
    # A set: `from_db` looks up each of the model's fields in it.
    row_names = frozenset(f.attname for f in row_fields)
    at_machine = len(IDLE_PRINTER_FIELDS)
    at_row = at_machine + len(IDLE_MACHINE_FIELDS)
    printers = []
    timelines: dict[int, Booking] = {}
    for row in rows:
        machine = IdleMachine(row[0], *row[at_machine:at_row])
        printers.append(IdlePrinter(machine, *row[:at_machine]))
        if row[at_row] is not None:  # the machine has a row ahead
            timelines[machine.pk] = Booking.from_db(db.alias, row_names, row[at_row:])
    labs = _labs({p.machine.lab_id for p in printers})
    for printer in printers:
        printer.machine.lab = labs[printer.machine.lab_id]
    return Idle(printers, timelines)


def _labs(lab_ids: set[int]) -> dict[int, Lab]:
    """The labs by id, each with its print settings (None when it has none) cached as
    `select_related("print_settings")` leaves them: one hand-written statement, its
    rows made into models with `Model.from_db`."""
    if not lab_ids:
        return {}
    lab_fields, settings_fields = Lab._meta.concrete_fields, PrintSettings._meta.concrete_fields
    sql = _labs_sql().format(ids=_marks(lab_ids))
    db, rows = _fetch("labs", sql, [*lab_ids], [*lab_fields, *settings_fields])
    width = len(lab_fields)
    lab_names, settings_names = [f.attname for f in lab_fields], [f.attname for f in settings_fields]
    labs = {}
    for row in rows:
        lab = Lab.from_db(db.alias, lab_names, row[:width])
        found = None
        if row[width] is not None:  # the settings' primary key is the lab's
            found = PrintSettings.from_db(db.alias, settings_names, row[width:])
            PrintSettings.lab.field.set_cached_value(found, lab)
        Lab.print_settings.related.set_cached_value(lab, found)
        labs[lab.pk] = lab
    return labs


@cache
def _labs_sql() -> str:
    """The statement of `_labs`, its ids' marks left to fill in (`{ids}`)."""
    columns = [f"l.{_column(Lab, f.name)}" for f in Lab._meta.concrete_fields]
    columns += [f"s.{_column(PrintSettings, f.name)}" for f in PrintSettings._meta.concrete_fields]
    return (
        f"SELECT {', '.join(columns)} FROM {_table(Lab)} l "
        f"LEFT JOIN {_table(PrintSettings)} s ON s.{_column(PrintSettings, 'lab')} = l.id "
        "WHERE l.id IN ({ids})"
    )


# What the dispatcher reads of a machine's next timeline row (as `Floor.read` does).
TIMELINE_FIELDS = frozenset({"id", "machine", "kind", "member", "start", "end"})


# Where `_idle_read` puts its optional conditions (a lab, some machines) in `_idle_sql`'s.
_MORE_CONDITIONS = "/* more */"


@cache
def _idle_sql() -> tuple[str, list[Field]]:
    """The statement of `_idle_read` (its parameters in the order it fills them, its
    optional conditions at `_MORE_CONDITIONS`), and the timeline row's fields it reads
    after the printer's and the machine's (IDLE_PRINTER_FIELDS, IDLE_MACHINE_FIELDS), in
    the model's order (as `Model.from_db` takes them): TIMELINE_FIELDS.

    The idle printers are found first, and only theirs is the timeline row looked up:
    on PostgreSQL a MATERIALIZED CTE, which the planner cannot fold into the rest. As
    one query, on statistics a bulk change had left behind (bench/print_queue.py's
    tables after a few rounds), it planned the row's subquery for every printer before
    the conditions that leave none: a tick with nothing to do took 56-64 ms at 500
    printers where it takes ~1 ms."""
    row_fields = [f for f in Booking._meta.concrete_fields if f.name in TIMELINE_FIELDS]
    columns = [f"p.{_column(Printer, name)}" for name in IDLE_PRINTER_FIELDS]
    columns += [f"m.{_column(Machine, name)}" for name in IDLE_MACHINE_FIELDS]
    # Named apart: a printer's column and its machine's may share a name.
    named = [f"{column} AS c{n}" for n, column in enumerate(columns)]
    busy = _marks(_BUSY_STATES)
    on_printer = _marks(PrintJob.ON_PRINTER)
    idle = (
        f"SELECT {', '.join(named)} FROM {_table(Printer)} p "
        f"JOIN {_table(Machine)} m ON m.id = p.machine_id "
        f"LEFT JOIN {_table(LabAgent)} a ON a.id = m.agent_id "
        "WHERE p.accepts_jobs = %s AND p.bed_clear = %s AND m.status = %s "
        # Without network control, the operator's record must not say it is busy.
        f"AND ((m.connection_secret = '' AND m.agent_id IS NULL AND p.state NOT IN ({busy})) "
        # Networked: seen idle recently.
        "OR (p.state = %s AND p.seen_at >= %s) "
        # Via an agent: the agent's syncs are the freshness (a change it reports is
        # reconciled at once), so an idle printer costs the poller nothing.
        "OR (p.state = %s AND a.revoked_at IS NULL AND a.catching_up = %s AND a.last_seen_at >= %s)) "
        f"AND NOT EXISTS (SELECT 1 FROM {_table(PrintJob)} j "
        f"WHERE j.machine_id = p.machine_id AND j.status IN ({on_printer})){_MORE_CONDITIONS}"
    )
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    outer = [f"i.c{n}" for n in range(len(columns))]
    outer += [f"b.{_column(Booking, f.name)}" for f in row_fields]
    sql = (
        f"WITH idle AS {materialized}({idle}) "
        f"SELECT {', '.join(outer)} FROM idle i "
        # The machine's first active row still to end, within the look-ahead: active rows
        # never overlap, so the first by start is the one that runs now, if one does.
        f"LEFT JOIN {_table(Booking)} b ON b.id = (SELECT n.id FROM {_table(Booking)} n "
        f"WHERE n.machine_id = i.c0 AND n.status IN ({_marks(Booking.ACTIVE)}) "
        f"AND n.{_column(Booking, 'end')} > %s AND n.start < %s ORDER BY n.start LIMIT 1) "
        "ORDER BY i.c0"
    )
    return sql, row_fields


@dataclass(frozen=True)
class Plan:
    """What one round decided for one printer: this job, this G-code, until `end`."""

    printer: IdlePrinter
    job: Candidate
    gcode: Sliced
    end: datetime


def dispatch_tick(*, now: datetime | None = None, lab_id: int | None = None) -> list[int]:
    """Give idle printers their next job; return the ids of the jobs claimed.

    By sets: the idle printers, their timelines, their candidates (one index read per
    group of printers that match the same jobs, all in one statement), the G-code and
    the labs' clocks are read once; `waiting.dispatch_round` decides; one transaction
    claims every decision (`_claim_all`)."""
    now = now or timezone.now()
    claimed: list[int] = []
    again: set[int] | None = None
    for _ in range(ROUNDS):
        idle = _idle_read(now=now, lab_id=lab_id, machine_ids=again)
        if not idle.printers:
            break
        plans = _plan(idle, now)
        if not plans:
            break
        won, again = _claim_all(plans, now=now)
        claimed.extend(won)
        if not again:
            break
    return claimed


def _group(printer: IdlePrinter) -> tuple[int, str, str, Decimal, str]:
    """Printers with the same key match the same queued jobs (`waiting.match_blocker`)."""
    machine = printer.machine
    return (machine.lab_id, machine.kind, printer.material, Decimal(printer.nozzle_mm), printer.colour)


@dataclass
class _Read:
    """A group's candidates as read: the jobs, and for each of the dispatcher's two orders
    (starving, ranked) the ids read, in that order, and whether they are all there are."""

    jobs: list[Candidate] = field(default_factory=list)
    starving: list[int] = field(default_factory=list)
    ranked: list[int] = field(default_factory=list)
    starving_all: bool = False
    ranked_all: bool = False


def _plan(idle: Idle, now: datetime) -> list[Plan]:
    """One round of decisions over the idle printers (`waiting.dispatch_round`), nothing
    written.

    Each group of printers reads only the first jobs of its orders: as many as the free
    printers that may take them, plus LOOK_AHEAD. A printer rarely looks further (its
    first candidate fits); when one does (`_settled` says its decision might differ
    from one made on the whole queue), its group reads its full CANDIDATES_PER_PRINTER
    and the round is decided again."""
    floor = Floor.at(now=now, rows=idle.timelines)
    free = [p for p in idle.printers if printer_blocker(p, floor) is None]
    if not free:
        return []
    groups: dict[tuple, list[IdlePrinter]] = {}
    for printer in free:
        groups.setdefault(_group(printer), []).append(printer)
    rivals = Counter(key[:3] for key in groups for _ in groups[key])
    reads = _candidates(
        {key: rivals[key[:3]] + LOOK_AHEAD for key in groups}, starving_before=floor.starving_before
    )
    whole: set[tuple] = set()  # groups read as far as any printer may look
    gcodes: dict[tuple[int, str], Sliced] = {}
    sliced: set[int] = set()  # the jobs whose G-code was read
    # A printer's profile key is a hash of its whole slicer profile: once per printer.
    keys = {p.pk: p.profile_key for p in free}
    profiles = {"", *keys.values()}
    qualifying = any(p.machine.requires_qualification for p in free)
    labs = list({p.machine.lab_id: p.machine.lab for p in free}.values())
    matched: dict[tuple, list[Candidate]] = {}

    def gcode_for(job: Candidate, printer: IdlePrinter) -> Sliced | None:
        return gcodes.get((job.pk, keys[printer.pk])) or gcodes.get((job.pk, ""))

    def candidates_of(printer: IdlePrinter) -> list[Candidate]:
        # The printers of a group match the same jobs: `match_blocker` once per group.
        key = _group(printer)
        if key not in matched:
            matched[key] = [j for j in reads[key].jobs if match_blocker(j, printer) is None]
        return matched[key]

    unsettled: set[tuple] = set()

    def watch(printer: IdlePrinter, order: list[Candidate], took: int | None, taken: set[int]) -> None:
        key = _group(printer)
        if key not in whole and not _settled(reads[key], order, took, taken):
            unsettled.add(key)

    while True:
        found = {j.pk: j for read in reads.values() for j in read.jobs}
        if not found:
            return []
        missing = [pk for pk in found if pk not in sliced]
        gcodes.update(_gcodes(missing, profiles))
        sliced.update(missing)
        if not whole or qualifying:  # the labs' clocks once; the owners' qualifications as they come
            floor.read_ahead(
                labs=labs, owner_ids={j.owner_id for j in found.values()} if qualifying else set()
            )
        unsettled.clear()
        went_to = dispatch_round(
            free=free, candidates_of=candidates_of, floor=floor, gcode_for=gcode_for, watch=watch
        )
        if not unsettled:
            break
        reads.update(
            _candidates(
                {key: CANDIDATES_PER_PRINTER + rivals[key[:3]] for key in unsettled},
                starving_before=floor.starving_before,
            )
        )
        whole |= unsettled
        for key in unsettled:
            matched.pop(key, None)
    plans = []
    for printer in free:
        job = went_to.get(printer.pk)
        if job is None:
            continue
        gcode = gcode_for(job, printer)
        assert gcode is not None  # job_blocker refuses a job without G-code for this printer
        plans.append(Plan(printer, job, gcode, now + jobs.timeline_span(gcode.estimated_seconds)))
    return plans


# What the round and the claim read of a G-code, in `Sliced`'s order.
GCODE_FIELDS = ("pk", "job", "profile_key", "estimated_seconds")


@dataclass(slots=True, eq=False)
class Sliced:
    """A candidate's G-code for one profile as `_gcodes` reads it: a plain row of what the
    round (`waiting.SlicedFor`) and the claim read of it, GCODE_FIELDS in that order (not
    a model instance: building one works through each of its fields; not frozen either,
    as `Candidate`)."""

    pk: int
    job_id: int
    profile_key: str
    estimated_seconds: int | None


def _gcodes(job_ids: list[int], profiles: set[str]) -> dict[tuple[int, str], Sliced]:
    """The G-code of these jobs for these profiles, by (job, profile key): one hand-written
    statement (the queryset cost more to build than to answer), each row through its
    fields' database converters (`machines.rows`)."""
    if not job_ids:
        return {}

    def col(name: str) -> str:
        return _column(PrintGcode, name)

    of_jobs, params = _among_ids(col("job"), _field(PrintGcode, "job"), job_ids)
    sql = (
        f"SELECT {', '.join(col(name) for name in GCODE_FIELDS)} FROM {_table(PrintGcode)} "
        f"WHERE {of_jobs} AND {col('profile_key')} IN ({_marks(profiles)})"
    )
    fields = [_field(PrintGcode, name) for name in GCODE_FIELDS]
    found = {}
    for row in _fetch("gcodes", sql, [*params, *profiles], fields)[1]:
        gcode = Sliced(*row)
        found[(gcode.job_id, gcode.profile_key)] = gcode
    return found


def _settled(read: _Read, order: list[Candidate], took: int | None, taken: set[int]) -> bool:
    """Whether a printer's decision over its group's partial read is the one it would make
    over the whole queue: all it looked at (up to the job it took, or all of `order` if
    it took none) is what `candidate_order` gives from the whole queue.

    Each term read is the head of its order in the whole queue, minus what was taken
    before the printer's turn. The starving jobs come first: exact as far as the starving
    term's untaken rows reach (all of them if the term was read whole, or if they fill
    CANDIDATES_PER_PRINTER). Then the ranked jobs: exact as far as the ranked term's
    untaken rows reach, likewise."""
    looked = len(order) if took is None else took + 1
    starving = [pk for pk in read.starving if pk not in taken]
    if not (read.starving_all or len(starving) >= CANDIDATES_PER_PRINTER):
        return took is not None and looked <= len(starving)
    first = {j.pk for j in order[: min(len(starving), CANDIDATES_PER_PRINTER)]}
    ranked = [pk for pk in read.ranked if pk not in taken]
    if read.ranked_all or len(ranked) >= CANDIDATES_PER_PRINTER:
        return True
    exact = len(first) + sum(1 for pk in ranked if pk not in first)
    return took is not None and looked <= exact


def _candidates(limits: dict[tuple, int], *, starving_before: datetime) -> dict[tuple, _Read]:
    """The first queued jobs of each group of printers (`limits`: how many of each order)
    by the dispatcher's two orders (`waiting.candidate_order`): of the jobs of the lab and
    kind with the group's material, any nozzle or the group's, any colour or the group's.
    Ranges of the `print_job_queue` index per group, all groups in one statement: on
    SQLite a `UNION ALL` of them (`_candidate_sqlite_terms`); on PostgreSQL, which plans each term of a `UNION ALL`
    (~1 ms each at 50 printers, far more than it takes to run), one `LATERAL` read per
    order over the groups' values (`_candidate_lateral_sql`), planned once."""
    keys = list(limits)
    nozzle_field = PrintJob._meta.get_field("nozzle_mm")
    nozzles: dict[Decimal, Any] = {}  # each nozzle prepared once: the groups share a few
    # Each group's values: its index, lab, kind, material, nozzle, colour and read limit.
    groups: list[tuple[Any, ...]] = []
    for index, key in enumerate(keys):
        lab_id, kind, material, nozzle, colour = key
        if nozzle not in nozzles:
            nozzles[nozzle] = nozzle_field.get_db_prep_value(nozzle, connection)
        groups.append((index, lab_id, kind, material, nozzles[nozzle], colour, limits[key]))
    # Each row: the job's columns, then the statement's two extra ones (group, term).
    fields = [*(_field(PrintJob, name) for name in CANDIDATE_FIELDS), None, None]
    read_rows = []
    if connection.vendor == "postgresql":
        # The groups' values as one array per column (`_candidate_lateral_sql`): the
        # integers' as text (`_id_array`), the others as lists psycopg dumps.
        columns: list[Any] = [list(column) for column in zip(*groups, strict=True)]
        for at in (0, 1, 6):  # the group's index, its lab, its read limit
            columns[at] = _id_array(columns[at])
        read_rows += _fetch("candidates", _candidate_lateral_sql(), [*columns, starving_before], fields)[1]
    else:
        group_terms = _candidate_sqlite_terms()
        per_read = TERMS_PER_READ // len(group_terms)
        for first in range(0, len(groups), per_read):
            # Named parameters: each group's values once for its terms, the starving bound
            # once for all (Django turns `%s` marks into SQLite's with a regular expression
            # over the whole statement, which cost more than SQLite took to run it).
            params: dict[str, Any] = {"starving_before": starving_before}
            terms = []
            for index, *of_group, limit in groups[first : first + per_read]:
                params.update(zip(_candidate_names(index), of_group, strict=True))
                terms += [term.format(n=index, limit=limit) for term in group_terms]
            sql = " UNION ALL ".join(f"SELECT * FROM ({term}) AS t{n}" for n, term in enumerate(terms))
            read_rows += _fetch("candidates", sql, params, fields)[1]
    width = len(CANDIDATE_FIELDS)
    rows = [(row[width], row[width + 1], Candidate(*row[:width])) for row in read_rows]
    # UNION ALL promises no order, neither its terms' nor their rows': put each term's
    # rows back in its own order (`_candidate_where`), terms by group, starving first.
    rows.sort(key=_read_order)
    found = {key: _Read() for key in keys}
    for group, term, job in rows:
        read = found[keys[group]]
        ids = read.starving if term == 0 else read.ranked
        if job.pk not in read.starving and job.pk not in read.ranked:
            read.jobs.append(job)
        ids.append(job.pk)
    for key, read in found.items():
        read.starving_all = len(read.starving) < limits[key]
        read.ranked_all = len(read.ranked) < limits[key]
    return found


def _read_order(row: tuple[int, int, Candidate]) -> tuple:
    """Where a row of `_candidates`' statement goes: its group, its term, then the term's
    ORDER BY (`_candidate_where`; a starving job has a queued_at, a ranked one may not: NULLs
    last, as PostgreSQL orders them and `waiting.candidate_order` does)."""
    group, term, job = row
    if term == 0:
        return (group, 0, job.queued_at, job.pk)
    return (group, 1, -job.priority, job.queued_at is None, job.queued_at or datetime.min, job.pk)


@dataclass(eq=False)
class Candidate:
    """A queued job as the candidate read gives it: a plain row of what the predicates
    (`waiting.QueuedJob`) and the claim read of it, CANDIDATE_FIELDS in that order, each
    value through its field's database converters (`machines.rows`). Nothing changes it;
    it is not frozen because a frozen dataclass sets each field through
    `object.__setattr__`: 1.3 µs a row against 0.2, for ~150 rows a tick at 50 printers."""

    pk: int
    owner_id: int
    size_mm: Any
    queued_at: datetime | None
    priority: int
    path: str
    copies_done: int
    lab_id: int
    machine_kind: str
    material: str
    colour: str
    nozzle_mm: Decimal | None

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @cached_property
    def owner(self) -> User:
        """Read only to name an owner who is not qualified."""
        return User.objects.get(pk=self.owner_id)


def _candidate_where(*, starving: bool, group: str, before: str = "%s") -> tuple[str, str]:
    """The conditions and the order of one of `_candidates`' index reads, the group's
    values taken from `group` (a row of the groups' values, or marks), the starving bound
    from `before`."""

    def col(name: str) -> str:
        return _column(PrintJob, name)

    lab, kind, material, nozzle, colour = (group.format(name) for name in _CANDIDATE_GROUP_NAMES[1:6])
    where = (
        f"{col('status')} = '{S.QUEUED.value}' AND {col('lab')} = {lab} AND {col('machine_kind')} = {kind} "
        f"AND {col('material')} = {material} AND ({col('nozzle_mm')} IS NULL OR {col('nozzle_mm')} = {nozzle}) "
        f"AND ({col('colour')} = '' OR {col('colour')} = {colour})"
    )
    if starving:
        where += f" AND {col('queued_at')} < {before}"
        return where, f"{col('queued_at')} ASC, {col('pk')} ASC"
    return where, f"{col('priority')} DESC, {col('queued_at')} ASC, {col('pk')} ASC"


def _candidate_names(index: int) -> list[str]:
    """The names of a group's parameters in `_candidate_sqlite_terms` (its lab, kind,
    material, nozzle and colour), for the group at `index`."""
    return [f"{name}_{index}" for name in _CANDIDATE_GROUP_NAMES[1:6]]


@cache
def _candidate_sqlite_terms() -> tuple[str, ...]:
    """`_candidates`' two index reads of one group on SQLite (starving, ranked), as SQL:
    built once, from the model's own names (an ORM queryset per group cost more to build
    than the database took to answer it), the group's index (`{n}`) and read limit
    (`{limit}`) left to fill in, its values as named parameters (`_candidate_names`)."""
    columns = ", ".join(_column(PrintJob, name) for name in CANDIDATE_FIELDS)
    group = "%({}_{{n}})s"
    terms = []
    for starving in (True, False):
        where, order = _candidate_where(starving=starving, group=group, before="%(starving_before)s")
        terms.append(
            f"SELECT {columns}, {{n}} AS fabhub_group, {0 if starving else 1} AS fabhub_term "
            f"FROM {_table(PrintJob)} WHERE {where} ORDER BY {order} LIMIT {{limit}}"
        )
    return tuple(terms)


# A group's values in `_candidate_lateral_sql`: its index, lab, kind, material, nozzle,
# colour, and how many jobs of each order it reads.
_CANDIDATE_GROUP_NAMES = (
    "fabhub_group",
    "for_lab",
    "for_kind",
    "for_material",
    "for_nozzle",
    "for_colour",
    "reads",
)


@cache
def _candidate_lateral_sql() -> str:
    """`_candidates`' two index reads for every group at once (PostgreSQL): the groups'
    values, one array parameter per column of _CANDIDATE_GROUP_NAMES made into rows
    (`unnest`), joined LATERAL to each read, which runs once per group with its values;
    then the starving bound. Arrays, not a VALUES list of a mark per value (which cost
    psycopg ~0.7 ms for the 420 marks of 30 groups' values, once per read; see
    `_id_array`)."""
    fields = [_field(PrintJob, name) for name in ("lab", "machine_kind", "material", "nozzle_mm", "colour")]
    types = ["integer", *(f.cast_db_type(connection) for f in fields), "integer"]
    arrays = ", ".join(f"CAST(%s AS {name}[])" for name in types)
    columns = ", ".join(f"j.{_column(PrintJob, name)}" for name in CANDIDATE_FIELDS)
    reads = []
    for starving in (True, False):
        where, order = _candidate_where(starving=starving, group="g.{}")
        reads.append(
            f"SELECT t.*, g.fabhub_group, {0 if starving else 1} AS fabhub_term FROM g CROSS JOIN LATERAL "
            f"(SELECT {columns} FROM {_table(PrintJob)} j WHERE {where} ORDER BY {order} LIMIT g.reads) AS t"
        )
    return (
        f"WITH g ({', '.join(_CANDIDATE_GROUP_NAMES)}) AS (SELECT * FROM unnest({arrays})) "
        + " UNION ALL ".join(reads)
    )


def _field(model: type[Model], name: str) -> Field:
    """A concrete field of `model` by name ("pk" for its primary key), with its column."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None, name
    return field


# Each database connection's converters of the hand-written reads' columns, by read:
# working them out cost about as much as converting the rows.
_CONVERSIONS: WeakKeyDictionary[BaseDatabaseWrapper, dict[str, Conversions]] = WeakKeyDictionary()


def _fetch(
    read: str, sql: str, params: list[Any] | dict[str, Any], fields: Sequence[Field | None]
) -> tuple[BaseDatabaseWrapper, list[list[Any]]]:
    """The rows of the hand-written read named `read` (whose `fields`, the columns' fields
    in order, are always the same), each value through its field's database converters
    (`machines.rows`), and the connection that read them."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy looks it up again
    known = _CONVERSIONS.setdefault(db, {})
    if read not in known:
        known[read] = column_conversions(fields, db)
    conversions = known[read]
    with db.cursor() as cursor:
        if db.vendor == "postgresql" and db.timezone is UTC:
            _psycopg_times(cursor.cursor)
        cursor.execute(sql, params)
        return db, [converted(list(row), conversions, db) for row in cursor.fetchall()]


def _psycopg_times(cursor: Any) -> None:
    """Let this psycopg cursor read `timestamptz` values with psycopg's own loader (C, in
    psycopg's binary build) rather than Django's, a Python subclass of it that replaces
    each value's tzinfo with the connection's time zone: ~3 µs a value, 0.5 ms for the
    150 candidates' `queued_at` at 50 printers. The caller checks that the connection's
    time zone is UTC, where the two give the same values: Django sets the session's time
    zone to it, so the server sends each value with a +00 offset, which psycopg's loader
    reads as `datetime.timezone.utc`, the tzinfo Django's puts there."""
    from psycopg import adapters
    from psycopg.postgres import types
    from psycopg.pq import Format

    cursor.adapters.register_loader("timestamptz", adapters.get_loader(types["timestamptz"].oid, Format.TEXT))


# The dispatcher's hand-written statements are written with the models' own names:


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[Model], name: str) -> str:
    """The quoted column of a field of `model` by name ("pk" for its primary key)."""
    return connection.ops.quote_name(_field(model, name).column)  # type: ignore[arg-type]


def _marks(values: Sized) -> str:
    """One parameter mark per value, for an IN list."""
    return ", ".join(["%s"] * len(values))


def _among_ids(column: str, field: Field, ids: Collection[int]) -> tuple[str, list[Any]]:
    """`column IN (ids)`, for a column of integers (its field: `field`), and its
    parameters: on PostgreSQL `= ANY` of one array parameter (`_id_array`), elsewhere one
    mark per id."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(CAST(%s AS {field.cast_db_type(connection)}[]))", [_id_array(ids)]
    return f"{column} IN ({_marks(ids)})", [*ids]


def _id_array(ids: Iterable[int]) -> str:
    """PostgreSQL's text of an array of these integers, to pass as one parameter where a
    statement would take a mark per id: psycopg splits a statement of more than 50
    parameters at each of its marks every time it runs (~1.7 µs a mark, 0.24 ms for the
    gcodes' 140 job ids), and dumps a list parameter value by value in Python (~0.5 µs
    each); this text costs ~0.1 µs an id. An integer's text needs no quoting in it."""
    return "{" + ",".join([str(int(pk)) for pk in ids]) + "}"


def _time_array(times: Iterable[datetime]) -> str:
    """PostgreSQL's text of an array of these times (as their fields prepare them), one
    parameter as `_id_array` (psycopg dumps a list of times at ~4 µs each): ISO 8601
    text, which PostgreSQL reads exactly and which needs no quoting in it."""
    return "{" + ",".join([time.isoformat() for time in times]) + "}"


# Rows per UPDATE of `update_by_pk` (well under SQLite's and PostgreSQL's bound parameters).
ROWS_PER_UPDATE = 1000


def update_by_pk(
    model: type[Model],
    *,
    columns: tuple[str, ...],
    rows: dict[int, tuple[Any, ...]],
    same: dict[str, Any],
    where: dict[str, Any],
) -> int:
    """Update many rows of `model` at once, each with its own values of `columns` (`rows`:
    by primary key, the values in the order of `columns`), all with the values of `same`,
    those whose fields still equal `where`; return how many rows changed.

    One `UPDATE … FROM (VALUES …)` joined on the primary key per ROWS_PER_UPDATE rows
    (PostgreSQL, and SQLite since 3.33). Django can only say this as `Case(When(pk=…))`,
    which costs the database a comparison per row and arm, and Python a lookup per arm:
    for 500 claims the statement took longer than everything else of a tick.
    bench/print_queue.py times its baseline's UPDATE with this same function."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [_field(model, name) for name in columns]
    pk = _field(model, "pk")
    sets = [f"{quote(f.column)} = v.column{n + 2}" for n, f in enumerate(fields)]  # type: ignore[arg-type]
    set_params = []
    for name, value in same.items():
        field = _field(model, name)
        sets.append(f"{quote(field.column)} = %s")  # type: ignore[arg-type]
        set_params.append(field.get_db_prep_save(value, connection))
    conditions, where_params = [f"{table}.{quote(pk.column)} = v.column1"], []  # type: ignore[arg-type]
    for name, value in where.items():
        field = _field(model, name)
        conditions.append(f"{table}.{quote(field.column)} = %s")  # type: ignore[arg-type]
        where_params.append(field.get_db_prep_value(value, connection))
    # PostgreSQL types a VALUES list by its first row: say them there.
    if connection.vendor == "postgresql":
        typed = ", ".join(f"CAST(%s AS {f.cast_db_type(connection)})" for f in [pk, *fields])
    else:
        typed = ", ".join(["%s"] * (1 + len(fields)))
    plain = ", ".join(["%s"] * (1 + len(fields)))
    items = list(rows.items())
    changed = 0
    with connection.cursor() as cursor:
        for first in range(0, len(items), ROWS_PER_UPDATE):
            chunk = items[first : first + ROWS_PER_UPDATE]
            values = ", ".join([f"({typed})"] + [f"({plain})"] * (len(chunk) - 1))
            params: list[Any] = []
            for key, row in chunk:
                params.append(key)
                params.extend(f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True))
            cursor.execute(
                f"UPDATE {table} SET {', '.join(sets)} FROM (VALUES {values}) AS v WHERE {' AND '.join(conditions)}",
                [*set_params, *params, *where_params],
            )
            changed += cursor.rowcount
    return changed


def _claim_all(plans: list[Plan], *, now: datetime) -> tuple[list[int], set[int]]:
    """Claim the planned jobs and put them on their machines' timelines, in one
    transaction, by sets; hand the printers without network control their jobs in it,
    queue the other sends for after the commit. Returns the ids of the jobs claimed and
    the printers whose job was gone (taken or withdrawn meanwhile).

    The rules of a single claim (`_claim`), for many machines at once: each machine's
    timeline lock (taken in id order, so two dispatchers never deadlock), the printer
    still free (nor recorded busy by its operator), no row of its timeline over [now,
    end) (read after the locks), the job still queued (on PostgreSQL `FOR UPDATE SKIP
    LOCKED`: another dispatcher holding it is taking it), then one bulk INSERT of the
    timeline rows and one conditional UPDATE of the jobs, whose count is checked. PostgreSQL's `booking_no_overlap` has the last
    word: if it refuses the insert, everything rolls back and the plans are claimed one
    by one, each refusal a skip.

    One dispatch token serves the whole set: a send acts on (job, token), so each job's
    dispatch is still named uniquely, and a later dispatch of the job gets a new one.
    """
    token = jobs.new_token()
    ids = sorted(p.printer.pk for p in plans)
    gone: set[int] = set()
    try:
        with transaction.atomic():
            if connection.features.has_select_for_update:
                _lock_rows(Machine, ids)
            # The common case in one statement: every machine still free and its timeline
            # clear, so all their locks are taken at once. Otherwise, look machine by
            # machine which ones still are.
            ready = plans if _take_timelines(plans, now=now) == len(plans) else _still_free(plans, now=now)
            if ready and connection.features.has_select_for_update_skip_locked:
                # Another dispatcher holding a job's row is taking it: leave it, do not wait.
                # (SQLite has one writer at a time: the count of the UPDATE below is the check.)
                queued = set(
                    _lock_rows(PrintJob, [p.job.pk for p in ready], status=S.QUEUED.value, skip_locked=True)
                )
                gone = {p.printer.pk for p in ready if p.job.pk not in queued}
                ready = [p for p in ready if p.job.pk in queued]
            if not ready:
                return [], gone
            rows = Booking.objects.bulk_create(
                [
                    Booking(
                        machine_id=p.printer.pk,
                        kind=Booking.Kind.PRINT_JOB,
                        status=Booking.Status.APPROVED,
                        member=None,
                        created_by_id=p.job.owner_id,
                        start=now,
                        end=p.end,
                        note=f"Print job #{p.job.pk}: {p.job.filename}"[:500],
                    )
                    for p in ready
                ]
            )
            names = {p.job.pk: jobs.remote_name(p.job, token) for p in ready}
            # A printer without network control is handed its job in the claim itself (what
            # the manual driver's send would do): its operator's record is a row of this
            # database, durable with the claim, and no send follows.
            by_hand = [p for p in ready if not p.printer.machine.has_connection]
            handed = {p.job.pk for p in by_hand}
            claimed = update_by_pk(
                PrintJob,
                columns=("machine", "gcode", "booking", "remote_name", "status"),
                rows={
                    p.job.pk: (
                        p.printer.pk,
                        p.gcode.pk,
                        row.pk,
                        names[p.job.pk],
                        S.AWAITING_OPERATOR if p.job.pk in handed else S.DISPATCHING,
                    )
                    for p, row in zip(ready, rows, strict=True)
                },
                same={"dispatch_token": token, "claimed_at": now, "progress": None, "reason": ""},
                where={"status": S.QUEUED},
            )
            if claimed != len(ready):
                # A job left the queue since the plan read it (on PostgreSQL, the jobs
                # are locked: this does not happen). Roll back; the printers look again.
                raise Conflict("A claimed job moved meanwhile.")
            _record_hand_offs(by_hand, names, now=now)
            _send_after_commit([p for p in ready if p.job.pk not in handed], token)
    except IntegrityError as exc:
        if "booking_no_overlap" not in str(exc):
            raise
        logger.info("a timeline row collided while claiming %d jobs: claiming them one by one", len(plans))
        won = [p.job.pk for p in plans if _claim(p.job, p.printer, p.gcode, now=now, span=p.end - now)]
        return won, set()
    except Conflict:
        return [], {p.printer.pk for p in plans}
    logger.info("%d print jobs claimed", len(ready))
    return [p.job.pk for p in ready], gone


def _lock_rows(
    model: type[Model], ids: list[int], *, status: str | None = None, skip_locked: bool = False
) -> list[int]:
    """Lock the rows of `model` with these ids (and this `status`, if given) in id order,
    so two dispatchers never deadlock; `skip_locked`: leave those another transaction
    holds. Returns the ids locked. `SELECT … FOR UPDATE`, hand-written as the dispatcher's
    other statements are (the querysets cost more to build than to run); only on a
    database that locks rows (PostgreSQL)."""
    pk = _column(model, "pk")
    among, params = _among_ids(pk, _field(model, "pk"), ids)
    sql = f"SELECT {pk} FROM {_table(model)} WHERE {among}"
    if status is not None:
        sql += f" AND {_column(model, 'status')} = %s"
        params.append(status)
    sql += f" ORDER BY {pk} FOR UPDATE" + (" SKIP LOCKED" if skip_locked else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _take_timelines(plans: list[Plan], *, now: datetime) -> int:
    """Take the timelines of the planned machines that are still free, in one statement:
    the machine available, its printer taking jobs with a clear bed and holding no job,
    and no active row of its timeline over [now, plan's end). Returns how many it took
    (their `timeline_version` moved on: the lock the other writers of a timeline take)."""
    col = _column
    table = _table(Machine)
    end_field = _field(Booking, "end")
    postgresql = connection.vendor == "postgresql"
    on_printer, active, busy = _marks(PrintJob.ON_PRINTER), _marks(Booking.ACTIVE), _marks(_BUSY_STATES)
    version = col(Machine, "timeline_version")
    sql = (
        f"UPDATE {table} SET {version} = {version} + 1 FROM {{values}} "
        f"WHERE {table}.{col(Machine, 'pk')} = v.column1 AND {table}.{col(Machine, 'status')} = %s "
        f"AND EXISTS (SELECT 1 FROM {_table(Printer)} p WHERE p.{col(Printer, 'pk')} = v.column1 "
        f"AND p.{col(Printer, 'accepts_jobs')} = %s AND p.{col(Printer, 'bed_clear')} = %s "
        # Without network control, the operator's record must not say it is busy.
        f"AND (p.{col(Printer, 'state')} NOT IN ({busy}) OR {table}.{col(Machine, 'connection_secret')} <> '' "
        f"OR {table}.{col(Machine, 'agent')} IS NOT NULL)) "
        f"AND NOT EXISTS (SELECT 1 FROM {_table(PrintJob)} j WHERE j.{col(PrintJob, 'machine')} = v.column1 "
        f"AND j.{col(PrintJob, 'status')} IN ({on_printer})) "
        f"AND NOT EXISTS (SELECT 1 FROM {_table(Booking)} b WHERE b.{col(Booking, 'machine')} = v.column1 "
        f"AND b.{col(Booking, 'status')} IN ({active}) AND b.{col(Booking, 'end')} > %s "
        f"AND b.{col(Booking, 'start')} < v.column2)"
    )
    rest: list[Any] = [
        Machine.Status.AVAILABLE.value,
        True,
        True,
        *_BUSY_STATES,
        *PrintJob.ON_PRINTER,
        *Booking.ACTIVE,
    ]
    rest.append(end_field.get_db_prep_value(now, connection))
    ordered = sorted(plans, key=lambda p: p.printer.pk)
    prepared: dict[datetime, Any] = {}  # each end once: a tick's plans share a few
    for plan in ordered:
        if plan.end not in prepared:
            prepared[plan.end] = end_field.get_db_prep_value(plan.end, connection)
    if postgresql:
        # Two array parameters, not two marks per plan (see `_id_array`), so no chunks.
        values = (
            f"unnest(CAST(%s AS {_field(Machine, 'pk').cast_db_type(connection)}[]), "
            f"CAST(%s AS {end_field.cast_db_type(connection)}[])) AS v (column1, column2)"
        )
        ids, ends = _id_array(p.printer.pk for p in ordered), _time_array(prepared[p.end] for p in ordered)
        chunks: list[tuple[str, list[Any]]] = [(values, [ids, ends])]
    else:
        chunks = []
        for first in range(0, len(ordered), ROWS_PER_UPDATE):
            chunk = ordered[first : first + ROWS_PER_UPDATE]
            values = f"(VALUES {', '.join(['(%s, %s)'] * len(chunk))}) AS v"
            chunks.append((values, [value for p in chunk for value in (p.printer.pk, prepared[p.end])]))
    taken = 0
    with connection.cursor() as cursor:
        for values, params in chunks:
            cursor.execute(sql.format(values=values), [*params, *rest])
            taken += cursor.rowcount
    return taken


def _still_free(plans: list[Plan], *, now: datetime) -> list[Plan]:
    """The plans whose machine is still free, machine by machine (`_take_timelines` found
    that some are not): all the machines' timelines taken, then the printers still free,
    and no active row of each timeline over [now, plan's end), read under the locks."""
    ids = [p.printer.pk for p in plans]
    Machine.objects.filter(pk__in=ids).update(timeline_version=F("timeline_version") + 1)
    holding = PrintJob.objects.filter(machine=OuterRef("pk"), status__in=PrintJob.ON_PRINTER)
    free = set(
        Printer.objects.filter(
            pk__in=ids, accepts_jobs=True, bed_clear=True, machine__status=Machine.Status.AVAILABLE
        )
        .filter(~Exists(holding), ~_RECORDED_BUSY)
        .values_list("pk", flat=True)
    )
    ready = [p for p in plans if p.printer.pk in free]
    if not ready:
        return []
    busy: dict[int, list[datetime]] = {}
    for machine_id, start in Booking.objects.filter(
        machine_id__in=[p.printer.pk for p in ready],
        status__in=Booking.ACTIVE,
        end__gt=now,
        start__lt=max(p.end for p in ready),
    ).values_list("machine_id", "start"):
        busy.setdefault(machine_id, []).append(start)
    return [p for p in ready if not any(start < p.end for start in busy.get(p.printer.pk, ()))]


def _send_after_commit(claims: list[Plan], token: str) -> None:
    """Tell the networked printers (or those via an agent), each in a send task of its
    own, once the claims are durable."""
    for plan in claims:
        enqueue("machines.tasks.send_print_job", plan.job.pk, token)


def _record_hand_offs(claims: list[Plan], names: dict[int, str], *, now: datetime) -> None:
    """The operators' records of the printers without network control whose jobs were just
    claimed as handed over (`awaiting_operator`): the file to carry (`names`: each job's file
    name on its printer), as the manual driver's `upload_and_start` says it. One UPDATE of
    many rows, each with its own values."""
    if not claims:
        return
    update_by_pk(
        Printer,
        columns=("job_name", "message"),
        rows={
            p.printer.pk: (names[p.job.pk], f"carry {names[p.job.pk]} to the printer and start it by hand")
            for p in claims
        },
        same={
            "state": PrinterState.AWAITING_OPERATOR.value,
            "progress": None,
            "seen_at": now,
            "state_changed_at": now,
        },
        where={},
    )


def _claim(job: Candidate, printer: IdlePrinter, gcode: Sliced, *, now: datetime, span: timedelta) -> bool:
    """Claim `job` for `printer` and put it on the machine's timeline, in one transaction;
    hand it over (no network control) or queue the send for after the commit. False if
    anything moved meanwhile. (The path of one claim, when the set's insert met
    PostgreSQL's exclusion constraint.)"""

    token = jobs.new_token()
    name = jobs.remote_name(job, token)
    end = now + span
    try:
        with transaction.atomic():
            machine = timeline_lock(printer.pk)
            if machine.status != Machine.Status.AVAILABLE:
                return False
            holding = PrintJob.objects.filter(machine=OuterRef("pk"), status__in=PrintJob.ON_PRINTER)
            if (
                not Printer.objects.filter(pk=printer.pk, accepts_jobs=True, bed_clear=True)
                .filter(~Exists(holding), ~_RECORDED_BUSY)
                .exists()
            ):
                return False  # changed since the tick read it: taken, its bed to clear, busy
            if collision(machine, now, end) is not None:
                return False
            waiting = PrintJob.objects.filter(pk=job.pk, status=S.QUEUED)
            if connection.features.has_select_for_update_skip_locked:
                # Another dispatcher holds this job's row: it is taking it; do not wait.
                if not waiting.select_for_update(skip_locked=True).values_list("pk", flat=True):
                    return False
            by_hand = not machine.has_connection
            if not waiting.update(
                status=S.AWAITING_OPERATOR if by_hand else S.DISPATCHING,
                machine=machine,
                gcode_id=gcode.pk,
                dispatch_token=token,
                claimed_at=now,
                remote_name=name,
                progress=None,
                reason="",
            ):
                return False
            row = timeline_insert(
                machine,
                kind=Booking.Kind.PRINT_JOB,
                status=Booking.Status.APPROVED,
                member=None,
                created_by_id=job.owner_id,
                start=now,
                end=end,
                note=f"Print job #{job.pk}: {job.filename}"[:500],
            )
            PrintJob.objects.filter(pk=job.pk).update(booking=row)
            plan = Plan(printer, job, gcode, end)
            if by_hand:
                _record_hand_offs([plan], {job.pk: name}, now=now)
            else:
                _send_after_commit([plan], token)
    except Conflict:
        return False
    logger.info("print job %s claimed for %s", job.pk, printer.machine.name)
    return True


# -- sending ---------------------------------------------------------------------------------


def print_job_send(*, job_id: int, token: str) -> str:
    """Send a claimed job to its printer and start it; returns what happened.

    Runs after the claim committed. Only the dispatch named by `token` may act: a second
    delivery of this task, or one that the sweeper superseded, changes nothing.
    """
    now = timezone.now()
    if not _renew_claim(job_id, token, now):
        return "stale"
    job = _sending(job_id)
    if job is None:  # deleted since (its lab was)
        return "stale"
    machine = job.printer_machine
    manual = not machine.has_connection
    printer = getattr(machine, "printer", None)
    try:
        driver = driver_for_machine(machine, printer=printer)
        # Connecting asks the print server how its printer is connected: a question the
        # poller answered moments ago if it saw the printer idle (the dispatcher's own
        # condition). The upload still checks that the printer is idle before it starts.
        if not _seen_idle(machine, printer, now):
            driver.connect()
    except PrinterError as exc:
        # Nothing reached the printer: the job goes back to the queue for any printer.
        _unreachable(machine.pk, exc)
        jobs.job_requeue(job, f"{machine.name} could not take it: {exc.message}", token=token)
        return "requeued"
    path = gcode_path(job.printer_gcode.sha256)
    try:
        driver.upload_and_start(path, job.remote_name)
    except PrinterError as exc:
        if exc.nothing_sent and exc.retryable:  # as if connecting had failed
            _unreachable(machine.pk, exc)
            jobs.job_requeue(job, f"{machine.name} could not take it: {exc.message}", token=token)
            return "requeued"
        # A refusal may name this very job, started by an earlier delivery: ask.
        return _after_failed_start(job, token, driver, exc)
    if manual:
        _record_manual(machine.pk, driver.status())
    if jobs.job_started(job, token, manual=manual):
        return "started"
    # Cancelled while it was being sent: stop what was just started.
    try:
        driver.cancel()
    except PrinterError as exc:
        logger.warning("could not cancel job %s on %s: %s", job.pk, machine, exc.message)
    return "cancelled"


def _renew_claim(job_id: int, token: str, now: datetime) -> bool:
    """Whether the dispatch named by `token` still holds the job (then its claim is renewed
    to `now`, so the sweeper leaves it alone): a second delivery of the send, or one the
    sweeper superseded, loses here. One hand-written statement (the queryset's UPDATE took
    longer to build than SQLite took to run it)."""
    sql, claimed_at = _renew_claim_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [claimed_at.get_db_prep_value(now, connection), job_id, S.DISPATCHING.value, token]
        )
        return cursor.rowcount == 1


@cache
def _renew_claim_sql() -> tuple[str, Field]:
    """The statement of `_renew_claim` (claimed_at, then the job, status and token) and
    the field that prepares its time."""
    claimed_at = _field(PrintJob, "claimed_at")
    sql = (
        f"UPDATE {_table(PrintJob)} SET {_column(PrintJob, 'claimed_at')} = %s "
        f"WHERE {_column(PrintJob, 'pk')} = %s AND {_column(PrintJob, 'status')} = %s "
        f"AND {_column(PrintJob, 'dispatch_token')} = %s"
    )
    return sql, claimed_at


# What the send reads of a claimed job, its G-code, its machine and its printer: what it,
# the driver and the state changes after it (`jobs.job_started`, `job_requeue`) use. Any
# other field of these rows is read when first used (Django's deferred fields), as are
# the job's lab and owner, which only the paths of a failed send name.
SEND_FIELDS: dict[type[Model], tuple[str, ...]] = {
    PrintJob: (
        "pk",
        "lab",
        "owner",
        "path",
        "status",
        "machine",
        "gcode",
        "booking",
        "dispatch_token",
        "remote_name",
        "claimed_at",
        "print_started_at",
        "progress",
    ),
    PrintGcode: ("pk", "job", "sha256", "profile_key", "estimated_seconds"),
    Machine: ("pk", "lab", "name", "kind", "status", "connection_secret", "agent"),
    Printer: ("machine", "state", "progress", "job_name", "message", "seen_at", "serial_port", "baudrate"),
}


def _sending(job_id: int) -> PrintJob | None:
    """The claimed job as the send uses it (None if it is gone), with its G-code, machine
    and printer (None if the machine has none) cached on it as `select_related` leaves
    them: one hand-written statement of SEND_FIELDS, each model's part made into an
    instance with `Model.from_db`. (The send read the job with `select_related` over six
    relations, every column of six tables, a queryset that took more CPU to build and
    make into models than the rest of the send outside the driver: this read and the
    claim's renewal take ~0.25 ms.)"""
    sql, fields = _sending_sql()
    db, rows = _fetch("sending", sql, [job_id], [f for model_fields in fields for f in model_fields])
    if not rows:
        return None
    row = rows[0]
    made: list[Any] = []
    start = 0
    for model, model_fields in zip(SEND_FIELDS, fields, strict=True):
        values = row[start : start + len(model_fields)]
        start += len(model_fields)
        names = frozenset(f.attname for f in model_fields)
        # A key read as NULL: no such row (a job without G-code or machine, a machine
        # without printer), as `select_related` leaves it.
        absent = values[model_fields.index(model._meta.pk)] is None
        made.append(None if absent else model.from_db(db.alias, names, values))
    job, gcode, machine, printer = made
    PrintJob.gcode.field.set_cached_value(job, gcode)
    PrintJob.machine.field.set_cached_value(job, machine)
    if machine is not None:
        Machine.printer.related.set_cached_value(machine, printer)
    return job


@cache
def _sending_sql() -> tuple[str, list[list[Field]]]:
    """The statement of `_sending`, and the fields it reads of each model of SEND_FIELDS
    in that order, each model's in its own field order (as `Model.from_db` takes them)."""
    aliases = dict(zip(SEND_FIELDS, ("j", "g", "m", "p"), strict=True))
    fields, columns = [], []
    for model, names in SEND_FIELDS.items():
        wanted = {_field(model, name) for name in names}
        ordered = [f for f in model._meta.concrete_fields if f in wanted]
        fields.append(ordered)
        columns += [f"{aliases[model]}.{_column(model, f.name)}" for f in ordered]
    sql = (
        f"SELECT {', '.join(columns)} FROM {_table(PrintJob)} j "
        f"LEFT JOIN {_table(PrintGcode)} g ON g.{_column(PrintGcode, 'pk')} = j.{_column(PrintJob, 'gcode')} "
        f"LEFT JOIN {_table(Machine)} m ON m.{_column(Machine, 'pk')} = j.{_column(PrintJob, 'machine')} "
        f"LEFT JOIN {_table(Printer)} p ON p.{_column(Printer, 'pk')} = m.{_column(Machine, 'pk')} "
        f"WHERE j.{_column(PrintJob, 'pk')} = %s"
    )
    return sql, fields


def _seen_idle(machine: Machine, printer: Printer | None, now: datetime) -> bool:
    """A printer the hub drives directly that its poller saw connected and idle within
    FABHUB_PRINT_STATE_MAX_AGE_S (what `idle_printers` asks of it)."""
    return (
        printer is not None
        and bool(machine.connection_secret)
        and machine.agent_id is None
        and printer.state == PrinterState.IDLE.value
        and printer.seen_at is not None
        and printer.seen_at >= now - timedelta(seconds=settings.FABHUB_PRINT_STATE_MAX_AGE_S)
    )


def _record_manual(machine_id: int, status: PrinterStatus) -> None:
    jobs.record_manual_state(
        machine_id, status.state.value, status.job_name or "", status.message, progress=status.progress
    )


def _after_failed_start(job: PrintJob, token: str, driver: PrinterDriver, error: PrinterError) -> str:
    """upload_and_start failed: find out from the printer whether the job started anyway."""
    machine = job.printer_machine
    try:
        status = driver.status()
    except PrinterError as again:
        _unreachable(machine.pk, again)
        if error.nothing_sent:
            jobs.job_requeue(job, f"{machine.name} could not take it: {error.message}", token=token)
            return "requeued"
        # It may or may not have started: the poller finds out when the printer answers.
        jobs.job_lost(
            job, f"{machine.name} stopped answering while the job was sent: {error.message}", token=token
        )
        return "lost"
    if machine.has_connection:
        _observed(machine.pk, status)
    if status.job_name == job.remote_name and (status.state.has_active_job or status.progress == 100):
        jobs.job_started(job, token, manual=not machine.has_connection)
        return "started"
    if status.state.has_active_job or error.retryable or error.nothing_sent:
        # Busy with something else (a print started at the printer), not ready yet, or
        # refused before the upload (in error: as when connecting fails): the job never
        # started here, so any printer may have it.
        jobs.job_requeue(job, f"{machine.name} could not take it: {error.message}", token=token)
        return "requeued"
    jobs.job_failed(
        job, f"The printer refused the job: {error.message}", from_statuses=(S.DISPATCHING,), token=token
    )
    return "failed"


def cancel_on_printer(*, machine_id: int, remote_name: str) -> bool:
    """Tell the printer to stop a job the hub cancelled, if that job is what it runs."""
    machine = Machine.objects.filter(pk=machine_id).first()
    if machine is None or not machine.has_connection:
        return False
    driver = driver_for_machine(machine)
    status = driver.status()
    if status.job_name != remote_name or not status.state.has_active_job:
        return False
    driver.cancel()
    return True


# -- tracking --------------------------------------------------------------------------------


def printers_poll(*, lab_id: int | None = None) -> int:
    """Poll every networked printer once, in parallel; return how many were polled.

    A printer via agent costs no network call, but a hub with many labs has many: one is
    polled here only when it holds a job or its agent fell silent (or was revoked). A
    change its agent reports is reconciled at once (`machines.tasks.poll_printer`), and
    the dispatcher takes the agent's syncs as the freshness of an idle state.
    """
    now = timezone.now()
    holding = PrintJob.objects.filter(machine=OuterRef("pk"), status__in=PrintJob.ON_PRINTER)
    agent_due = (
        Exists(holding)
        | Q(seen_at__isnull=True)
        | Q(machine__agent__last_seen_at__isnull=True)
        | Q(machine__agent__last_seen_at__lt=now - timedelta(seconds=settings.FABHUB_AGENT_SILENT_S))
        | Q(machine__agent__revoked_at__isnull=False)
    ) & ~Q(
        state=PrinterState.OFFLINE.value,
        machine__agent__last_seen_at__lt=now - timedelta(seconds=settings.FABHUB_AGENT_SILENT_S),
    )
    rows = Printer.objects.filter(
        ~Q(machine__connection_secret="") | (Q(machine__agent__isnull=False) & agent_due)
    )
    if lab_id is not None:
        rows = rows.filter(machine__lab_id=lab_id)
    ids = list(rows.values_list("pk", flat=True))
    if not ids:
        return 0
    if len(ids) == 1:
        printer_poll(machine_id=ids[0])
        return 1
    with ThreadPoolExecutor(max_workers=min(settings.FABHUB_PRINT_POLL_THREADS, len(ids))) as pool:
        return sum(1 for result in pool.map(_poll_in_thread, ids) if result is not None)


def _poll_in_thread(machine_id: int) -> str | None:
    close_old_connections()
    try:
        return printer_poll(machine_id=machine_id)
    except Exception:
        logger.exception("polling printer %s failed", machine_id)
        return None
    finally:
        connection.close()


def printer_poll(*, machine_id: int) -> str | None:
    """Ask one printer how it is and reconcile the job on it; returns its state, or None
    if another poller holds it (a poller that died lets go after POLL_LEASE)."""
    now = timezone.now()
    lease = now + POLL_LEASE
    if (
        not Printer.objects.filter(pk=machine_id)
        .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
        .update(poll_lease_until=lease)
    ):
        return None
    try:
        return _poll(machine_id)
    finally:
        Printer.objects.filter(pk=machine_id, poll_lease_until=lease).update(poll_lease_until=None)


def _poll(machine_id: int) -> str | None:
    printer = Printer.objects.select_related("machine", "machine__lab").get(pk=machine_id)
    machine = printer.machine
    if not machine.has_connection:
        return None
    job = (
        PrintJob.objects.select_related("lab", "owner", "machine", "gcode")
        .filter(machine=machine, status__in=PrintJob.ON_PRINTER)
        .first()
    )
    try:
        driver = driver_for_machine(machine)
        status = driver.status()
    except PrinterError as exc:
        _unreachable(machine.pk, exc)
        if job is not None and job.status in (S.PRINTING, S.PAUSED):
            at = f" at {job.progress:.0f} %" if job.progress is not None else ""
            jobs.job_lost(job, f"{machine.name} stopped answering{at}: {exc.message}")
        return "offline" if exc.retryable else "error"
    _observed(machine.pk, status)
    if job is not None and job.status not in (S.DISPATCHING, S.AWAITING_REMOVAL):
        _reconcile(job, status)
    elif job is None:
        _stop_orphan(machine, driver, status)
    # Reconnect a print server that lost its printer. After an error only once a person
    # has looked (the bed confirmed clear): an emergency stop is not undone by itself.
    needs_connecting = status.state is PrinterState.OFFLINE or (
        status.state is PrinterState.ERROR and Printer.objects.filter(pk=printer.pk, bed_clear=True).exists()
    )
    if (
        needs_connecting
        and not PrintJob.objects.filter(machine=machine, status__in=PrintJob.ON_PRINTER).exists()
    ):
        _try_connect(printer, driver)
    return status.state.value


def _reconcile(job: PrintJob, status: PrinterStatus) -> None:
    """Bring the job in line with what the printer says (printing, paused, finished,
    stopped, error), or, if the printer no longer knows the job, end it as interrupted:
    nothing is ever resumed without a person."""
    ours = status.job_name == job.remote_name
    state = status.state
    machine = job.printer_machine
    if ours and state in (PrinterState.PRINTING, PrinterState.PAUSING, PrinterState.CANCELLING):
        jobs.job_progress(job, status=S.PRINTING, progress=status.progress)
        _extend_timeline(job, status.progress)
    elif ours and state is PrinterState.PAUSED:
        jobs.job_progress(job, status=S.PAUSED, progress=status.progress)
        _extend_timeline(job, status.progress)
    elif ours and state is PrinterState.AWAITING_OPERATOR:
        # The printer wants a person (PrusaLink's ATTENTION: filament runout, a crash
        # detected); the job goes on once they act, so it is neither failed nor lost.
        jobs.job_progress(job, status=S.PAUSED, progress=status.progress)
        _extend_timeline(job, status.progress)
    elif ours and state is PrinterState.IDLE and status.progress == 100:
        jobs.job_finished(job)
    elif state is PrinterState.ERROR:
        jobs.job_failed(job, f"{machine.name} reported an error: {status.message}")
    elif ours and state is PrinterState.IDLE:
        jobs.job_failed(
            job, f"The print was stopped at the printer at {_percent(job)} (cancelled on {machine.name})."
        )
    elif state in (PrinterState.CONNECTING, PrinterState.UNKNOWN) and ours:
        return  # not conclusive: look again next time
    elif job.print_started_at is None and job.status == S.PRINTER_LOST:
        jobs.job_requeue(
            job,
            f"{machine.name} answered again without the job: it never started.",
            from_statuses=(S.PRINTER_LOST,),
        )
    else:
        jobs.job_failed(
            job,
            f"Interrupted: {machine.name} lost the print at {_percent(job)} (it now says: {status.message or state}). "
            "The print server restarted or lost the printer; nothing was resumed. Check the bed.",
            result=PrintRecord.Result.INTERRUPTED,
        )


def _percent(job: PrintJob) -> str:
    return f"{job.progress:.0f} %" if job.progress is not None else "an unknown point"


def _extend_timeline(job: PrintJob, progress: float | None) -> None:
    """A print running late keeps its machine: stretch its timeline row (up to the next
    row). When the next row is a member's booking it would run into, the member and the
    job's owner are told, once."""
    if not job.booking_id or progress is None:
        return
    estimate = job.gcode.estimated_seconds if job.gcode is not None else None
    if estimate is None:
        return
    now = timezone.now()
    wanted = now + jobs.timeline_span(round(estimate * (1 - progress / 100)))
    row = Booking.objects.filter(pk=job.booking_id, status__in=Booking.ACTIVE).first()
    if row is None or row.end >= now + timedelta(minutes=2):
        return
    with transaction.atomic():
        timeline_lock(row.machine_id)
        following = (
            Booking.objects.filter(machine_id=row.machine_id, status__in=Booking.ACTIVE, start__gte=row.end)
            .exclude(pk=row.pk)
            .select_related("member")
            .order_by("start")
            .first()
        )
        end = min(wanted, following.start) if following else wanted
        if end > row.end:
            Booking.objects.filter(pk=row.pk, status__in=Booking.ACTIVE).update(end=end)
        if (
            following is not None
            and wanted > following.start
            and following.kind == Booking.Kind.BOOKING
            and following.member is not None
        ):
            _tell_overrun(job, following)


OVERRUN_SUBJECT = "Running late"


def _tell_overrun(job: PrintJob, booking: Booking) -> None:
    """Tell the booking's member and the print's owner, once per booking (the notices name
    the booking; this runs under the machine's timeline lock, so two polls never both send)."""
    if notifications_about(booking=booking).filter(subject__startswith=OVERRUN_SUBJECT).exists():
        return
    machine = job.printer_machine
    at = booking.start.astimezone(job.lab.zone)
    when = (
        f"{at:%H:%M}"
        if at.date() == timezone.now().astimezone(job.lab.zone).date()
        else f"{at:%a %d %b %H:%M}"
    )
    member = booking.member
    assert member is not None  # only a member's booking is told
    notify(
        user=member,
        lab=job.lab,
        booking=booking,
        subject=f"{OVERRUN_SUBJECT}: {machine.name} may still be printing when your booking starts",
        body=(
            f"A print on {machine.name} is running past its estimate and may not have ended at {when}, "
            "when your booking starts. The lab's managers can see it on the print queue."
        ),
    )
    if job.owner_id != member.pk:
        notify(
            user=job.owner,
            lab=job.lab,
            booking=booking,
            subject=f"{OVERRUN_SUBJECT}: {job.filename} on {machine.name}",
            body=(
                f"Your print is running past its estimate, and {machine.name} is booked by a member "
                f"from {when}. Collect the part as soon as it ends."
            ),
        )


def _stop_orphan(machine: Machine, driver: PrinterDriver, status: PrinterStatus) -> None:
    """A print the hub cancelled but whose cancel never got through: stop it now."""
    if not (status.state.has_active_job and status.job_name and status.job_name.startswith("fabhub-")):
        return
    if PrintJob.objects.filter(
        machine=machine, remote_name=status.job_name, status__in=PrintJob.FINAL
    ).exists():
        try:
            driver.cancel()
        except PrinterError as exc:
            logger.warning("could not stop a cancelled job on %s: %s", machine, exc.message)


def _try_connect(printer: Printer, driver: PrinterDriver) -> None:
    """The print server answers but is not connected to the printer: connect it (once a
    minute at most, at once after the server was unreachable or the bed was cleared), so
    a printer that was switched off comes back by itself."""
    now = timezone.now()
    if (
        not Printer.objects.filter(pk=printer.pk)
        .filter(Q(connect_tried_at__isnull=True) | Q(connect_tried_at__lt=now - CONNECT_RETRY))
        .update(connect_tried_at=now)
    ):
        return
    try:
        driver.connect()
        _observed(printer.pk, driver.status())
    except PrinterError as exc:
        if exc.retryable:
            _unreachable(printer.pk, exc)
        else:
            logger.info("could not connect %s: %s", printer, exc.message)


# -- sweeping --------------------------------------------------------------------------------


def print_queue_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Take over what dead workers left: sends, preparations, timeline rows."""

    now = now or timezone.now()
    counts = {"dispatching": 0, "preparing": 0, "rows": 0}
    stale_before = now - timedelta(seconds=settings.FABHUB_PRINT_DISPATCH_TIMEOUT_S)
    for job in PrintJob.objects.filter(status=S.DISPATCHING, claimed_at__lt=stale_before).select_related(
        "lab", "owner", "machine", "gcode"
    ):
        if _take_over_dispatch(job, now):
            counts["dispatching"] += 1

    stuck = (
        PrintJob.objects.filter(status=S.PREPARING)
        .filter(
            Q(prepare_lease_until__lt=now)
            | Q(prepare_lease_until__isnull=True, submitted_at__lt=now - timedelta(minutes=2))
        )
        .select_related("lab", "owner")
    )
    for job in stuck:
        if job.prepare_attempts >= jobs.MAX_PREPARE_ATTEMPTS:
            jobs.prepare_failed(
                job,
                f"Preparing the job was interrupted {job.prepare_attempts} times (the worker stopped each time).",
            )
        else:
            enqueue("machines.tasks.prepare_print_job", job.pk)
        counts["preparing"] += 1

    held = PrintJob.objects.filter(status__in=PrintJob.ON_PRINTER, booking__isnull=False).values("booking_id")
    orphans = Booking.objects.filter(kind=Booking.Kind.PRINT_JOB, status__in=Booking.ACTIVE).exclude(
        pk__in=held
    )
    counts["rows"] += orphans.filter(start__gte=now).update(
        status=Booking.Status.CANCELLED, reason="No job holds it."
    )
    counts["rows"] += orphans.filter(start__lt=now, end__gt=now).update(end=now)
    if any(counts.values()):
        logger.info("print queue sweep: %s", counts)
    return counts


def _take_over_dispatch(job: PrintJob, now: datetime) -> bool:
    """A job stuck "sending": its worker died. Ask the printer whether it started."""
    token = job.dispatch_token
    if not PrintJob.objects.filter(
        pk=job.pk, status=S.DISPATCHING, dispatch_token=token, claimed_at=job.claimed_at
    ).update(claimed_at=now):
        return False  # another sweeper took it
    machine = job.printer_machine
    try:
        status = driver_for_machine(machine).status()
    except PrinterError as exc:
        _unreachable(machine.pk, exc)
        jobs.job_lost(
            job,
            f"The worker sending the job stopped, and {machine.name} does not answer: {exc.message}",
            token=token,
        )
        return True
    manual = not machine.has_connection
    if not manual:
        _observed(machine.pk, status)
    if status.job_name == job.remote_name and (status.state.has_active_job or status.progress == 100):
        if jobs.job_started(job, token, manual=manual) and status.progress == 100 and not manual:
            job.refresh_from_db()
            jobs.job_finished(job)
        return True
    jobs.job_requeue(job, "The worker sending the job stopped before the printer started it.", token=token)
    return True
