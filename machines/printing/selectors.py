"""Reads of the print queue: who sees which job, which printers suit a job, the lab's queue."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Field, Q, QuerySet
from django.utils import timezone

from designs.models import Design
from designs.selectors import designs_visible_to, fits
from hub.auth import Viewer
from hub.exceptions import NotFound
from hub.models import User
from machines import timeline
from machines.models import (
    Lab,
    LabMembership,
    Machine,
    MaterialPrice,
    Printer,
    PrintJob,
    PrintRecord,
    PrintSettings,
)
from machines.rows import Conversions, column_conversions, converted
from machines.selectors import lab_role
from machines.spools import canonical_colour as canonical_colour
from machines.spools import canonical_material as canonical_material


def print_settings_of(lab: Lab) -> PrintSettings:
    """The lab's queue settings; the defaults (unsaved) if it never changed them."""
    found = PrintSettings.objects.filter(lab=lab).first()
    return found if found is not None else PrintSettings(lab=lab)


def print_settings_read_with(lab: Lab) -> PrintSettings:
    """`print_settings_of` for a lab just read with them (`select_related` of
    `print_settings`, or of `lab__print_settings` from a job): nothing more is read."""
    found: PrintSettings | None = getattr(lab, "print_settings", None)
    return found if found is not None else PrintSettings(lab=lab)


def printer_of(machine: Machine) -> Printer | None:
    return Printer.objects.filter(machine=machine).select_related("machine", "machine__lab").first()


def printers_of_lab(lab: Lab) -> QuerySet[Printer]:
    return (
        Printer.objects.filter(machine__lab=lab)
        .select_related("machine", "machine__lab")
        .order_by("machine__name")
    )


def printer_can_use(printer: Printer, material: str, nozzle_mm: Decimal | None) -> bool:
    """Whether the printer can print `material` with that nozzle, once someone loads it.

    The machine's `capabilities` (`materials`, `nozzle_diameters_mm`) list what it can
    take; without them, only what is loaded now counts.
    """
    capabilities = printer.machine.capabilities or {}
    materials = capabilities.get("materials") or [printer.material]
    if canonical_material(material) not in {canonical_material(str(m)) for m in materials}:
        return False
    if nozzle_mm is None:
        return True
    nozzles = capabilities.get("nozzle_diameters_mm") or [printer.nozzle_mm]
    try:
        return any(abs(Decimal(str(n)) - Decimal(nozzle_mm)) < Decimal("0.001") for n in nozzles)
    except ArithmeticError:
        return False


# The submission's reads are hand-written statements, built once per process from the
# models' own names: compiling their querysets cost more CPU than running them (issue 18:
# ~0.3-0.5 ms a statement, where the whole submission of a small G-code is ~3.5 ms).


def _quoted(db: BaseDatabaseWrapper, fields: list[Field], alias: str) -> list[str]:
    return [f"{alias}.{db.ops.quote_name(str(f.column))}" for f in fields]


_CONVERSIONS: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[str, Conversions]] = (
    weakref.WeakKeyDictionary()
)


def _rows(read: str, sql: str, params: list[Any], fields: list[Field | None]) -> tuple[str, list[list[Any]]]:
    """The rows of the hand-written read named `read` (its columns' `fields` always the
    same), each value as the ORM would read it (`machines.rows`), and the database alias."""
    db = connections[DEFAULT_DB_ALIAS]
    known = _CONVERSIONS.setdefault(db, {})
    if read not in known:
        known[read] = column_conversions(fields, db)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return db.alias, [converted(list(row), known[read], db) for row in cursor.fetchall()]


_PRINTER_FIELDS: list[Field] = list(Printer._meta.concrete_fields)
_MACHINE_FIELDS: list[Field] = list(Machine._meta.concrete_fields)
_PRINTER_NAMES = [f.attname for f in _PRINTER_FIELDS]
_MACHINE_NAMES = [f.attname for f in _MACHINE_FIELDS]


@cache
def _compatible_sql(vendor: str) -> str:
    db = connections[DEFAULT_DB_ALIAS]
    qn = db.ops.quote_name
    columns = _quoted(db, _PRINTER_FIELDS, "p") + _quoted(db, _MACHINE_FIELDS, "m")
    return (
        f"SELECT {', '.join(columns)} FROM {qn(Printer._meta.db_table)} p "
        f"INNER JOIN {qn(Machine._meta.db_table)} m ON p.machine_id = m.id "
        "WHERE m.lab_id = %s AND m.kind = %s AND p.accepts_jobs = %s ORDER BY m.name"
    )


def compatible_printers(lab: Lab, *, kind: str, material: str, nozzle_mm: Decimal | None) -> list[Printer]:
    """The lab's printers (taking jobs) that can print this material with this nozzle, by
    machine name, each with its machine; the machine's lab is `lab` (not read again)."""
    alias, rows = _rows(
        "compatible",
        _compatible_sql(connections[DEFAULT_DB_ALIAS].vendor),
        [lab.pk, kind, True],
        [*_PRINTER_FIELDS, *_MACHINE_FIELDS],
    )
    width = len(_PRINTER_NAMES)
    found = []
    for row in rows:
        printer = Printer.from_db(alias, _PRINTER_NAMES, row[:width])
        machine = Machine.from_db(alias, _MACHINE_NAMES, row[width:])
        machine.lab = lab
        printer.machine = machine
        if printer_can_use(printer, material, nozzle_mm):
            found.append(printer)
    return found


@dataclass(frozen=True)
class SubmissionReads:
    """What a submission reads of its lab for its member, in one statement."""

    role: str | None  # as `machines.selectors.lab_role` gives it
    settings: PrintSettings  # as `print_settings_of` gives them
    material_prices: list[tuple[str, Decimal, Decimal]]  # material, price per gram, density


_SETTINGS_FIELDS: list[Field] = list(PrintSettings._meta.concrete_fields)
_SETTINGS_NAMES = [f.attname for f in _SETTINGS_FIELDS]
_SETTINGS_KEY = next(i for i, f in enumerate(_SETTINGS_FIELDS) if f.primary_key)
_PRICE_FIELDS: list[Field] = [
    f
    for f in MaterialPrice._meta.concrete_fields
    if f.name in ("material", "price_per_gram", "density_g_cm3")
]


@cache
def _submission_sql(vendor: str) -> str:
    db = connections[DEFAULT_DB_ALIAS]
    qn = db.ops.quote_name
    membership = qn(LabMembership._meta.db_table)
    columns = _quoted(db, _SETTINGS_FIELDS, "s") + _quoted(db, _PRICE_FIELDS, "mp")
    # The lab's row makes one row without settings or prices; each price adds one, in the
    # order `accounting.lab_prices` reads them (by material).
    return (
        f"SELECT (SELECT CASE WHEN ms.status = %s THEN 'pending' ELSE ms.role END FROM {membership} ms "
        f"WHERE ms.lab_id = l.id AND ms.user_id = %s), {', '.join(columns)} "
        f"FROM {qn(Lab._meta.db_table)} l "
        f"LEFT JOIN {qn(PrintSettings._meta.db_table)} s ON s.lab_id = l.id "
        f"LEFT JOIN {qn(MaterialPrice._meta.db_table)} mp ON mp.lab_id = l.id "
        "WHERE l.id = %s ORDER BY mp.material"
    )


def submission_reads(lab: Lab, user: User) -> SubmissionReads:
    """`user`'s role at `lab`, the lab's print settings and its material prices: what
    `print_job_submit` checks and prices with, read at once."""
    alias, rows = _rows(
        "submission",
        _submission_sql(connections[DEFAULT_DB_ALIAS].vendor),
        [LabMembership.Status.PENDING.value, user.pk, lab.pk],
        [None, *_SETTINGS_FIELDS, *_PRICE_FIELDS],
    )
    if not rows:  # the lab is gone: nobody is a member of it
        return SubmissionReads(role=None, settings=PrintSettings(lab=lab), material_prices=[])
    first = rows[0]
    at_price = 1 + len(_SETTINGS_NAMES)
    if first[1 + _SETTINGS_KEY] is None:  # no settings row: the defaults, unsaved
        settings_row = PrintSettings(lab=lab)
    else:
        settings_row = PrintSettings.from_db(alias, _SETTINGS_NAMES, first[1:at_price])
        settings_row.lab = lab
    prices = [(m, p, d) for m, p, d in (row[at_price:] for row in rows) if m is not None]
    return SubmissionReads(role=first[0], settings=settings_row, material_prices=prices)


class HasVolume(Protocol):
    """A printer's work area as `job_fits` reads it: a Printer, or the dispatcher's plain
    row of one (`dispatch.IdlePrinter`)."""

    @property
    def build_volume(self) -> tuple[float, float, float] | None: ...


def job_fits(size: dict | None, printer: HasVolume) -> bool:
    """Whether a part (a mesh's oriented box, or a G-code's extents) fits the printer.

    A printer whose work area is not recorded cannot be ruled out: the slicer checks its
    profile's bed anyway.
    """
    volume = printer.build_volume
    if not size or volume is None:
        return True
    if "obb" in size:
        return fits(size["obb"], volume)
    if "high" in size:
        # G-code is already placed for a bed; 1 mm of slack for purge lines and rounding.
        return all(h <= v + 1 for h, v in zip(size["high"], volume, strict=True))
    return True


def active_job_on(machine: Machine) -> PrintJob | None:
    return (
        PrintJob.objects.filter(machine=machine, status__in=PrintJob.ON_PRINTER)
        .select_related("owner")
        .first()
    )


@dataclass(frozen=True)
class CardState:
    """What a printer's card shows: `value` (a status class) and `label` (its words)."""

    value: str
    label: str


_JOB_CARD = {
    PrintJob.Status.DISPATCHING: CardState("dispatching", "sending a job"),
    PrintJob.Status.AWAITING_OPERATOR: CardState("awaiting_operator", "waiting for an operator"),
    PrintJob.Status.PRINTING: CardState("printing", "printing"),
    PrintJob.Status.PAUSED: CardState("paused", "paused"),
    PrintJob.Status.PRINTER_LOST: CardState("printer_lost", "lost while printing"),
    PrintJob.Status.AWAITING_REMOVAL: CardState("awaiting_removal", "printed: awaiting removal"),
}


def printer_card_state(printer: Printer, job: PrintJob | None) -> CardState:
    """The printer's state as its card (and the API) shows it: the job on it decides while
    there is one, so a printer between two polls, or a manual printer whose operator has
    not said anything yet, never reads "idle" under a print or a part to collect."""
    if job is not None and job.status in _JOB_CARD:
        return _JOB_CARD[PrintJob.Status(job.status)]
    if not printer.bed_clear:
        return CardState("awaiting_removal", "bed not clear")
    return CardState(printer.state, printer.state.replace("_", " "))


def job_get(*, job_id: int, user: User) -> PrintJob:
    """A job its owner or a manager of its lab may see; anyone else gets NotFound."""
    job = (
        PrintJob.objects.select_related("lab", "owner", "machine", "machine__lab", "gcode", "design__owner")
        .filter(pk=job_id)
        .first()
    )
    if (
        job is None
        or not user.is_authenticated
        or (job.owner_id != user.pk and lab_role(job.lab, user) != "manager")
    ):
        raise NotFound(f"There is no print job {job_id}.")
    return job


def jobs_of_member(user: User) -> QuerySet[PrintJob]:
    return PrintJob.objects.filter(owner=user).select_related("lab", "owner", "machine", "gcode")


def jobs_of_lab(lab: Lab) -> QuerySet[PrintJob]:
    return PrintJob.objects.filter(lab=lab).select_related("lab", "owner", "machine", "gcode")


def queue_of_lab(lab: Lab, *, recent: int = 30) -> dict[str, list[PrintJob]]:
    """The lab's queue page: open jobs by stage, and the latest finished ones."""
    rows = jobs_of_lab(lab)
    open_rows = list(rows.filter(status__in=PrintJob.OPEN).order_by("-priority", "queued_at", "submitted_at"))
    stage = {
        "on_printer": (
            PrintJob.Status.DISPATCHING,
            PrintJob.Status.AWAITING_OPERATOR,
            PrintJob.Status.PRINTING,
            PrintJob.Status.PAUSED,
            PrintJob.Status.PRINTER_LOST,
        ),
        "awaiting_removal": (PrintJob.Status.AWAITING_REMOVAL,),
        "queued": (PrintJob.Status.QUEUED,),
        "waiting": (PrintJob.Status.PREPARING, PrintJob.Status.PENDING_APPROVAL),
    }
    groups = {name: [j for j in open_rows if j.status in statuses] for name, statuses in stage.items()}
    groups["finished"] = list(rows.filter(status__in=PrintJob.FINAL).order_by("-finished_at", "-pk")[:recent])
    return groups


def seconds_left(job: PrintJob) -> int | None:
    """Time left of a print, from the slicer's estimate and the progress so far."""
    estimate = job.gcode.estimated_seconds if job.gcode_id and job.gcode else job.estimated_seconds
    if (
        estimate is None
        or job.progress is None
        or job.status not in (PrintJob.Status.PRINTING, PrintJob.Status.PAUSED)
    ):
        return None
    return max(0, round(estimate * (1 - job.progress / 100)))


def lab_week_start(lab: Lab, instant: datetime) -> datetime:
    return timeline.wall_clock(timeline.week_start(instant, lab.zone), time(0), lab.zone)


def weekly_print_seconds(
    lab: Lab, user: User, *, now: datetime | None = None, exclude_id: int | None = None
) -> int:
    """Estimated print time a member submitted to the lab this lab week (copies count;
    refused jobs and jobs withdrawn before printing do not)."""
    now = now or timezone.now()
    start = lab_week_start(lab, now)
    rows = PrintJob.objects.filter(
        lab=lab, owner=user, submitted_at__gte=start, submitted_at__lt=start + timedelta(days=7)
    )
    rows = rows.exclude(status=PrintJob.Status.REFUSED).exclude(
        status__in=(PrintJob.Status.CANCELLED, PrintJob.Status.FAILED), print_started_at__isnull=True
    )
    if exclude_id is not None:
        rows = rows.exclude(pk=exclude_id)
    return sum((s or 0) * c for s, c in rows.values_list("estimated_seconds", "copies"))


def open_jobs_count(lab: Lab, user: User) -> int:
    return PrintJob.objects.filter(lab=lab, owner=user, status__in=PrintJob.OPEN).count()


def prints_of_design(design: Design) -> list[dict]:
    """Per part (file) and commit of a design: how many were made (and failed), and in
    which labs (`labs`: (slug, name) pairs, by name). Two queries."""
    rows = (
        PrintRecord.objects.filter(design=design)
        .values("commit_sha", "path")
        .annotate(
            made=Count("pk", filter=Q(result=PrintRecord.Result.DONE)),
            failed=Count("pk", filter=~Q(result=PrintRecord.Result.DONE)),
        )
        .order_by("commit_sha", "path")
    )
    labs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    done = PrintRecord.objects.filter(design=design, result=PrintRecord.Result.DONE)
    for sha, path, slug, name in (
        done.values_list("commit_sha", "path", "lab__slug", "lab__name").distinct().order_by("lab__name")
    ):
        labs.setdefault((sha, path), []).append((slug, name))
    return [{**row, "labs": labs.get((row["commit_sha"], row["path"]), [])} for row in rows]


def prints_per_commit(design: Design) -> list[dict]:
    """Per commit of a design: how many parts were made (and failed), in how many labs
    (the API's answer; the design page's panel groups by part as well)."""
    rows = (
        PrintRecord.objects.filter(design=design)
        .values("commit_sha")
        .annotate(
            made=Count("pk", filter=Q(result=PrintRecord.Result.DONE)),
            failed=Count("pk", filter=~Q(result=PrintRecord.Result.DONE)),
            labs=Count("lab", distinct=True, filter=Q(result=PrintRecord.Result.DONE)),
        )
        .order_by("commit_sha")
    )
    return [dict(row) for row in rows]


def records_visible_to(user: Viewer) -> QuerySet[PrintRecord]:
    """Provenance records of designs `user` may see (and their own prints of uploads)."""
    visible = Q(design__in=designs_visible_to(user).values("pk"))
    if user.is_authenticated:
        visible |= Q(owner=user)
    return PrintRecord.objects.filter(visible).select_related("lab", "design__owner")


def finished_prints_count(person: User, *, viewer: Viewer) -> int:
    """How many parts `person` printed in labs' queues, of the designs `viewer` may see."""
    return records_visible_to(viewer).filter(owner=person, result=PrintRecord.Result.DONE).count()
