"""Reads of the print queue: who sees which job, which printers suit a job, the lab's queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Protocol

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from designs.models import Design
from designs.selectors import designs_visible_to, fits
from hub.auth import Viewer
from hub.exceptions import NotFound
from hub.models import User
from machines import timeline
from machines.models import Lab, Machine, Printer, PrintJob, PrintRecord, PrintSettings
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


def compatible_printers(lab: Lab, *, kind: str, material: str, nozzle_mm: Decimal | None) -> list[Printer]:
    """The lab's printers (taking jobs) that can print this material with this nozzle."""
    rows = printers_of_lab(lab).filter(accepts_jobs=True, machine__kind=kind)
    return [p for p in rows if printer_can_use(p, material, nozzle_mm)]


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
