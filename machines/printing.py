"""Writes of the print queue: submitting, preparing (slicing), deciding, cancelling, and
every change of a job's state. docs/print-queue.md has the whole picture.

Every state change is a claim: a conditional `update()` on the job's status (and, for a
dispatched job, its `dispatch_token`) whose count is checked, so two workers, a worker
and a person, or two people acting on one job never both win. The winner alone writes
what follows (the provenance record, the timeline, the printer's bed flag), in the same
transaction. Work that talks to a printer or runs the slicer happens outside
transactions, through the adapters (`machines.drivers`, `machines.slicer`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import uuid
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from designs.selectors import design_blob_to_file
from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from hub.models import User
from hub.queue import enqueue
from machines import print_selectors as ps
from machines.models import Booking, Lab, Machine, Printer, PrintGcode, PrintJob, PrintRecord, PrintSettings
from machines.selectors import lab_role, qualification_for, require_manager, require_member
from machines.services import _notify_managers, notify

logger = logging.getLogger(__name__)

S = PrintJob.Status
GCODE_SUFFIXES = (".gcode", ".gco", ".g", ".gc")
MAX_COPIES = 100
MAX_PREPARE_ATTEMPTS = 3
PRINTER_FIELDS = (
    "accepts_jobs",
    "material",
    "colour",
    "nozzle_mm",
    "profile_name",
    "slicer_profile",
    "after_print",
    "serial_port",
    "baudrate",
)
SETTINGS_FIELDS = ("requires_approval", "max_active_jobs", "weekly_print_minutes", "slicer")


# -- files -----------------------------------------------------------------------------------


def gcode_path(sha256: str) -> Path:
    """Where the G-code (or uploaded file) with this sha256 is kept: content-addressed."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256")
    return Path(settings.DATA_DIR) / "print-files" / sha256[:2] / f"{sha256}.gcode"


def store_file(source: IO[bytes]) -> tuple[str, int]:
    """Copy `source` into the store while hashing it; return (sha256, size).

    Written to a temporary file on the same file system and renamed into place, so a
    crash never leaves a half file under a sha; the same content twice is stored once.
    """
    tmp_dir = Path(settings.DATA_DIR) / "print-files" / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        sha = digest.hexdigest()
        target = gcode_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return sha, size


def _source_to_file(job: PrintJob, target: Path) -> None:
    """Write the job's source file (a design blob, LFS resolved; or the upload) to `target`."""
    if not job.design_name:
        shutil.copyfile(gcode_path(job.source_sha), target)
        return
    if job.design is None:
        raise ValidationError(f"The design {job.design_name} was deleted.")
    design_blob_to_file(job.design, blob_sha=job.blob_sha, target=target)


# -- settings and printers -------------------------------------------------------------------


@transaction.atomic
def print_settings_update(*, lab: Lab, actor: User, **fields: Any) -> PrintSettings:
    require_manager(lab, actor)
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown print settings: {', '.join(sorted(unknown))}.")
    if "slicer" in fields and fields["slicer"] not in PrintSettings.Slicer.values:
        raise ValidationError(f"'slicer' must be one of {', '.join(PrintSettings.Slicer.values)}.")
    row, _ = PrintSettings.objects.get_or_create(lab=lab)
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


def _nozzle(value: Any, *, allow_none: bool) -> Decimal | None:
    if value in (None, ""):
        if allow_none:
            return None
        raise ValidationError("Give the nozzle diameter in mm, e.g. 0.4.")
    try:
        nozzle = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise ValidationError(f"The nozzle diameter must be a number of mm, not {value!r}.") from None
    if not Decimal("0.05") <= nozzle <= Decimal("5"):
        raise ValidationError(f"A nozzle of {nozzle} mm is not plausible: give its diameter in mm, e.g. 0.4.")
    return nozzle


def printer_configure(*, machine: Machine, actor: User, **fields: Any) -> Printer:
    """Put a machine in the print queue, or change what is loaded and how it is sliced for.

    A changed profile (or bed, or nozzle) gets the queued mesh jobs that could go to
    this machine sliced for it too, after the commit.
    """
    from machines import slicer

    require_manager(machine.lab, actor)
    unknown = set(fields) - set(PRINTER_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown printer fields: {', '.join(sorted(unknown))}.")
    if "material" in fields:
        fields["material"] = ps.canonical_material(fields["material"] or "")
        if not fields["material"]:
            raise ValidationError("Say which material is loaded, e.g. PLA.")
    if "colour" in fields:
        fields["colour"] = ps.canonical_colour(fields["colour"] or "")
    if "nozzle_mm" in fields:
        fields["nozzle_mm"] = _nozzle(fields["nozzle_mm"], allow_none=False)
    if "after_print" in fields and fields["after_print"] not in Printer.AfterPrint.values:
        raise ValidationError(f"'after_print' must be one of {', '.join(Printer.AfterPrint.values)}.")
    if fields.get("slicer_profile"):
        try:
            slicer.check_profile(fields["slicer_profile"])
        except slicer.SlicerError as exc:
            raise ValidationError(exc.message) from None
    with transaction.atomic():
        printer, _ = Printer.objects.select_for_update().get_or_create(machine=machine)
        printer.machine = machine
        before = printer.profile_key
        for name, value in fields.items():
            setattr(printer, name, value)
        printer.save()
        if printer.profile_key != before:
            _slice_waiting_jobs_for(printer)
    return printer


def _slice_waiting_jobs_for(printer: Printer) -> None:

    waiting = PrintJob.objects.filter(
        lab_id=printer.machine.lab_id,
        file_kind=PrintJob.FileKind.MESH,
        machine_kind=printer.machine.kind,
        status__in=(S.QUEUED, S.PENDING_APPROVAL),
    ).exclude(gcodes__profile_key=printer.profile_key)
    for job in waiting:
        if ps.printer_can_use(printer, job.material, job.nozzle_mm):
            enqueue("machines.tasks.slice_print_job_for", job.pk, printer.machine_id)


# -- submitting ----------------------------------------------------------------------------


def _file_kind(name: str) -> str:
    from machines.slicer import SLICEABLE

    lower = name.lower()
    if lower.endswith(GCODE_SUFFIXES):
        return PrintJob.FileKind.GCODE
    if lower.endswith(SLICEABLE):
        return PrintJob.FileKind.MESH
    if lower.endswith(".bgcode"):
        raise ValidationError(
            f"{name} is binary G-code, which the hub cannot read: export plain-text G-code."
        )
    from designs.meshes import is_mesh_path

    if is_mesh_path(name):
        raise ValidationError(f"{name} is a mesh the slicer cannot read: export it as STL, 3MF or OBJ.")
    raise ValidationError(
        f"{name} is neither a mesh (STL, 3MF, OBJ, AMF) nor G-code: the queue prints only those."
    )


def _check_gcode_text(head: bytes, name: str) -> None:
    if b"\0" in head or not head.strip():
        raise ValidationError(f"{name} does not look like G-code (it is empty or binary).")
    text = head.decode("utf-8", "replace")
    lines = [line.split(";", 1)[0].strip().upper() for line in text.splitlines()]
    if not any(line[:1] in ("G", "M", "T") and line[1:2].isdigit() for line in lines):
        raise ValidationError(f"{name} does not look like G-code: no G or M command in its first lines.")


def _require_slicer(lab: Lab) -> None:
    from machines.slicer import slicer_installed

    if ps.print_settings_of(lab).slicer == PrintSettings.Slicer.NONE or not slicer_installed():
        raise ValidationError(
            f"{lab.name} has no slicer installed, so it takes G-code only: slice the part yourself "
            "and send the .gcode file (G-code jobs still work)."
        )


def _mesh_size(design, sha: str, path: str, blob_sha: str, printers: list[Printer]) -> dict:
    """The mesh analysis of the file; refuses a file that fits none of `printers`."""
    from designs import analysis

    row = analysis.analyses_for_blobs([blob_sha]).get(blob_sha)
    if row is None:
        analysis.analyses_queue(design=design, commits=[sha])
        raise Conflict(f"{path} has not been analysed yet; it is queued now. Try again in a minute.")
    if row.status in ("pending", "running"):
        raise Conflict(f"{path} is still being analysed. Try again in a minute.")
    if row.status != "done" or not row.figures:
        raise ValidationError(
            f"{path} cannot be printed: the mesh analysis failed ({row.reason or 'no reason given'})."
        )
    units = analysis.declared_units(design, sha=sha, paths=[path]).get(path)
    figures = analysis.figures_at(row.figures, units)
    size = {"obb": [round(float(v), 3) for v in figures["obb_size"]]}
    if not any(ps.job_fits(size, p) for p in printers):
        biggest = max(
            (p for p in printers if p.build_volume), key=lambda p: sorted(p.build_volume), default=None
        )
        dims = " × ".join(f"{v:g}" for v in size["obb"])
        room = (
            f" (the largest is {biggest.machine.name}: {' × '.join(f'{v:g}' for v in biggest.build_volume)} mm)"
            if biggest
            else ""
        )
        raise ValidationError(f"{path} ({dims} mm) does not fit any printer that could print it{room}.")
    return size


def _check_limits(
    lab: Lab,
    owner: User,
    settings_row: PrintSettings,
    *,
    extra_seconds: int = 0,
    exclude_id: int | None = None,
) -> None:
    if settings_row.max_active_jobs is not None and exclude_id is None:
        active = ps.open_jobs_count(lab, owner)
        if active >= settings_row.max_active_jobs:
            raise ValidationError(
                f"You have {active} job(s) waiting or printing at {lab.name}, its limit per member: "
                "wait for one to finish or cancel one."
            )
    if settings_row.weekly_print_minutes is not None:
        used = ps.weekly_print_seconds(lab, owner, exclude_id=exclude_id)
        if used + extra_seconds > settings_row.weekly_print_minutes * 60:
            raise ValidationError(
                f"This job would take you over {lab.name}'s weekly limit of {settings_row.weekly_print_minutes / 60:g} h "
                f"of printing ({used / 3600:.1f} h used this week{f', this job {extra_seconds / 3600:.1f} h' if extra_seconds else ''})."
            )


def print_job_submit(
    *,
    lab: Lab,
    owner: User,
    design=None,
    path: str = "",
    rev: str = "",
    upload=None,
    material: str = "PLA",
    colour: str = "",
    nozzle_mm: Any = None,
    copies: int = 1,
    priority: int = PrintJob.Priority.NORMAL,
    notes: str = "",
    machine_kind: str = Machine.Kind.FDM_PRINTER,
) -> PrintJob:
    """Send a part to the lab's queue: a design's file pinned at a commit, or an uploaded G-code.

    Checks, each with its own message: membership, the file's kind, the priority, the
    slicer (for a mesh), a printer that can take the material and nozzle and that the
    member is qualified for, the mesh analysis (it must fit one of those printers), and
    the lab's per-member limits. The job is then prepared (sliced) in the background.
    """
    from designs.selectors import design_file, design_resolve

    require_member(lab, owner)
    if (design is None) == (upload is None):
        raise ValidationError(
            "Give either a design file (design, path and revision) or a G-code file to upload."
        )
    name = upload.name if upload is not None else path
    if not name:
        raise ValidationError("Give the path of the file to print.")
    file_kind = _file_kind(name)
    if upload is not None and file_kind != PrintJob.FileKind.GCODE:
        raise ValidationError("Only G-code can be uploaded; send meshes from a design, pinned to a commit.")
    if machine_kind not in Machine.Kind.values:
        raise ValidationError(f"{machine_kind!r} is not a kind of machine.")
    if priority not in PrintJob.Priority.values:
        raise ValidationError(
            f"Priority must be one of {', '.join(str(v) for v in PrintJob.Priority.values)}."
        )
    role = lab_role(lab, owner)
    if priority > PrintJob.Priority.NORMAL and role != "manager":
        raise PermissionDenied(f"Only managers of {lab.name} can give a job a priority above normal.")
    if not 1 <= copies <= MAX_COPIES:
        raise ValidationError(f"Ask for 1 to {MAX_COPIES} copies.")
    material = ps.canonical_material(material or "")
    if not material:
        raise ValidationError("Say which material to print in, e.g. PLA.")
    colour = ps.canonical_colour(colour or "")
    nozzle = _nozzle(nozzle_mm, allow_none=True)
    if file_kind == PrintJob.FileKind.MESH:
        if machine_kind != Machine.Kind.FDM_PRINTER:
            raise ValidationError(
                "The hub slices meshes for FDM printers only: send G-code for other machines."
            )
        _require_slicer(lab)

    printers = ps.compatible_printers(lab, kind=machine_kind, material=material, nozzle_mm=nozzle)
    if not printers:
        label = Machine.Kind(machine_kind).label
        kind_label = (
            label if label[:2].isupper() else label[0].lower() + label[1:]
        )  # "FDM printer", "laser cutter"
        with_nozzle = f" with a {nozzle} mm nozzle" if nozzle is not None else ""
        raise ValidationError(f"No {kind_label} of {lab.name} takes queued jobs in {material}{with_nozzle}.")
    today = timezone.now().astimezone(lab.zone).date()
    printers = [
        p
        for p in printers
        if not p.machine.requires_qualification or qualification_for(owner, p.machine, today) is not None
    ]
    if not printers:
        raise PermissionDenied(
            f"Every printer of {lab.name} that could print this needs a training: ask a manager to record "
            "your qualification."
        )

    source: dict[str, Any] = {}
    if design is not None:
        from designs.selectors import designs_visible_to

        if not designs_visible_to(owner).filter(pk=design.pk).exists():
            raise NotFound(f"No design {design.full_name}.")
        sha = design_resolve(design, rev or None)
        _, entry = design_file(design, rev=sha, path=path)
        source = {
            "design": design,
            "design_name": design.full_name,
            "path": path,
            "rev": rev or design.default_branch,
            "commit_sha": sha,
            "blob_sha": entry.sha,
        }
        if file_kind == PrintJob.FileKind.MESH:
            source["size_mm"] = _mesh_size(design, sha, path, entry.sha, printers)
    else:
        head = upload.read(4096)
        upload.seek(0)
        _check_gcode_text(head, upload.name)

    settings_row = ps.print_settings_of(lab)
    _check_limits(lab, owner, settings_row)
    if upload is not None:  # stored only once everything else passed
        sha, _ = store_file(upload)
        source = {"path": upload.name.replace("\\", "/").rsplit("/", 1)[-1][:255], "source_sha": sha}
    with transaction.atomic():
        job = PrintJob.objects.create(
            lab=lab,
            owner=owner,
            file_kind=file_kind,
            machine_kind=machine_kind,
            material=material,
            colour=colour,
            nozzle_mm=nozzle,
            copies=copies,
            priority=priority,
            notes=notes,
            status=S.PREPARING,
            needs_approval=settings_row.requires_approval and role != "manager",
            **source,
        )
        _queue_prepare(job)
    return job


def _queue_prepare(job: PrintJob) -> None:

    enqueue("machines.tasks.prepare_print_job", job.pk)


def _kick(lab_id: int) -> None:
    """A job joined the queue or a printer came free: dispatch now rather than at the next tick."""

    enqueue("machines.tasks.dispatch_print_jobs", lab_id)


# -- preparing (slicing) -------------------------------------------------------------------


def _claim_prepare(job_id: int, now: datetime) -> bool:
    lease = timedelta(seconds=settings.FABHUB_SLICER_TIME_LIMIT_S * 2 + 60)
    return bool(
        PrintJob.objects.filter(pk=job_id, status=S.PREPARING)
        .filter(Q(prepare_lease_until__isnull=True) | Q(prepare_lease_until__lt=now))
        .update(prepare_lease_until=now + lease, prepare_attempts=F("prepare_attempts") + 1)
    )


def _slice_for(job: PrintJob, printer: Printer, source: Path, work: Path) -> PrintGcode:
    from machines import slicer

    output = work / f"{printer.profile_key[:16]}.gcode"
    result = slicer.slice_mesh(
        source,
        output,
        profile=printer.slicer_profile,
        bed=printer.build_volume,
        nozzle_mm=float(printer.nozzle_mm),
    )
    with output.open("rb") as f:
        sha, size = store_file(f)
    gcode, _ = PrintGcode.objects.get_or_create(
        job=job,
        profile_key=printer.profile_key,
        defaults={
            "profile_name": printer.profile_name or f"{printer.machine.name}'s profile",
            "sha256": sha,
            "size": size,
            "slicer": result.slicer,
            "estimated_seconds": result.estimated_seconds,
            "estimate_source": "slicer",
            "filament_mm": result.filament_mm,
            "filament_g": result.filament_g,
        },
    )
    return gcode


def _work_name(job: PrintJob) -> str:
    """The source's name in the work folder: the file's own (the slicer names it in its
    messages), reduced to safe characters, with its extension (the slicer reads it)."""
    path = Path(job.filename)
    stem = (
        "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in path.stem)[:60] or "part"
    )
    return f"{stem}{path.suffix.lower() or '.gcode'}"


def print_job_prepare(*, job_id: int) -> PrintJob | None:
    """Slice a mesh job for every distinct profile among the printers that could take it
    (or read an uploaded G-code's estimates), then queue it or hand it to a manager.

    Claimed with a lease, so two workers never prepare one job and the sweeper can hand
    the job to another worker if this one dies. Returns None if there was nothing to do.
    """
    from machines.gcode import read_gcode
    from machines.slicer import SlicerError

    now = timezone.now()
    if not _claim_prepare(job_id, now):
        return None
    job = PrintJob.objects.select_related("lab", "owner", "design__owner").get(pk=job_id)
    work = Path(tempfile.mkdtemp(prefix="fabhub-prepare-"))
    try:
        source = work / _work_name(job)
        _source_to_file(job, source)
        if job.file_kind == PrintJob.FileKind.GCODE:
            info = read_gcode(source)
            with source.open("rb") as f:
                sha, size = store_file(f)
            gcode, _ = PrintGcode.objects.get_or_create(
                job=job,
                profile_key="",
                defaults={
                    "sha256": sha,
                    "size": size,
                    "estimated_seconds": info.estimated_seconds,
                    "estimate_source": info.estimate_source,
                    "filament_mm": info.filament_mm,
                    "filament_g": info.filament_g,
                },
            )
            gcodes = [gcode]
            size_mm = {"low": list(info.low), "high": list(info.high)} if info.high else None
        else:
            printers = [
                p
                for p in ps.compatible_printers(
                    job.lab, kind=job.machine_kind, material=job.material, nozzle_mm=job.nozzle_mm
                )
                if ps.job_fits(job.size_mm, p)
            ]
            if not printers:
                return _prepare_failed(job, "No printer of the lab can take this job any more.")
            by_profile = {p.profile_key: p for p in printers}
            gcodes = [_slice_for(job, p, source, work) for p in by_profile.values()]
            size_mm = job.size_mm
    except SlicerError as exc:
        if exc.retryable and job.prepare_attempts < MAX_PREPARE_ATTEMPTS:
            PrintJob.objects.filter(pk=job.pk, status=S.PREPARING).update(prepare_lease_until=None)
            raise
        return _prepare_failed(job, exc.message)
    except (OSError, ValidationError) as exc:
        return _prepare_failed(job, f"The file could not be read: {getattr(exc, 'message', exc)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    estimates = [g.estimated_seconds for g in gcodes if g.estimated_seconds is not None]
    estimate = max(estimates) if estimates else None
    first = gcodes[0]
    settings_row = ps.print_settings_of(job.lab)
    with transaction.atomic():
        PrintJob.objects.filter(pk=job.pk).update(
            estimated_seconds=estimate,
            filament_mm=first.filament_mm,
            filament_g=first.filament_g,
            size_mm=size_mm,
        )
        try:
            _check_limits(
                job.lab,
                job.owner,
                settings_row,
                extra_seconds=(estimate or 0) * job.copies,
                exclude_id=job.pk,
            )
        except ValidationError as exc:
            return _prepare_failed(job, exc.message)
        nxt = S.PENDING_APPROVAL if job.needs_approval else S.QUEUED
        moved = PrintJob.objects.filter(pk=job.pk, status=S.PREPARING).update(
            status=nxt,
            queued_at=now if nxt == S.QUEUED else None,
            prepare_lease_until=None,
        )
        job.refresh_from_db()
        if moved and nxt == S.QUEUED:
            _kick(job.lab_id)
        if moved and nxt == S.PENDING_APPROVAL:
            _notify_managers(
                job.lab,
                but=job.owner,
                subject=f"{job.owner.username} asks to print {job.filename} at {job.lab.name}",
                body=f"Estimated {_duration(estimate)}, {job.copies} cop{'y' if job.copies == 1 else 'ies'}. {job.notes}",
            )
    return job


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "unknown time"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{max(1, math.ceil(rest / 60))} min"


def _prepare_failed(job: PrintJob, reason: str) -> PrintJob:
    with transaction.atomic():
        if PrintJob.objects.filter(pk=job.pk, status=S.PREPARING).update(
            status=S.FAILED, reason=reason, finished_at=timezone.now(), prepare_lease_until=None
        ):
            notify(user=job.owner, lab=job.lab, subject=f"Could not prepare {job.filename}", body=reason)
    job.refresh_from_db()
    return job


def print_job_slice_for(*, job_id: int, machine_id: int) -> PrintGcode | None:
    """Slice a waiting mesh job for one more printer's profile (its profile changed, or it
    joined the queue after the job was prepared)."""
    from machines.slicer import SlicerError

    job = PrintJob.objects.select_related("lab", "design__owner").filter(pk=job_id).first()
    printer = Printer.objects.select_related("machine", "machine__lab").filter(pk=machine_id).first()
    if job is None or printer is None or job.status not in (S.QUEUED, S.PENDING_APPROVAL):
        return None
    if job.gcodes.filter(profile_key=printer.profile_key).exists():
        return None
    work = Path(tempfile.mkdtemp(prefix="fabhub-prepare-"))
    try:
        source = work / _work_name(job)
        _source_to_file(job, source)
        return _slice_for(job, printer, source, work)
    except (SlicerError, OSError, ValidationError) as exc:
        logger.warning(
            "could not slice job %s for %s: %s", job.pk, printer.machine, getattr(exc, "message", exc)
        )
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- decisions by people -------------------------------------------------------------------


@transaction.atomic
def print_job_approve(*, job: PrintJob, actor: User) -> PrintJob:
    require_manager(job.lab, actor)
    now = timezone.now()
    if not PrintJob.objects.filter(pk=job.pk, status=S.PENDING_APPROVAL).update(
        status=S.QUEUED, queued_at=now, decided_by=actor, decided_at=now
    ):
        raise Conflict("This job is no longer waiting for approval.")
    job.refresh_from_db()
    notify(user=job.owner, lab=job.lab, subject=f"Approved: {job.filename} is in {job.lab.name}'s queue")
    _kick(job.lab_id)
    return job


@transaction.atomic
def print_job_refuse(*, job: PrintJob, actor: User, reason: str) -> PrintJob:
    require_manager(job.lab, actor)
    if not reason.strip():
        raise ValidationError("Say why the job is refused: its owner is told.")
    now = timezone.now()
    if not PrintJob.objects.filter(pk=job.pk, status__in=(S.PENDING_APPROVAL, S.PREPARING)).update(
        status=S.REFUSED, reason=reason, decided_by=actor, decided_at=now, finished_at=now
    ):
        raise Conflict("This job is no longer waiting for approval.")
    job.refresh_from_db()
    notify(user=job.owner, lab=job.lab, subject=f"Refused: {job.filename} at {job.lab.name}", body=reason)
    return job


def _may_act(job: PrintJob, actor: User) -> bool:
    return job.owner_id == actor.pk or lab_role(job.lab, actor) == "manager"


def print_job_cancel(*, job: PrintJob, actor: User, reason: str = "") -> PrintJob:
    """Withdraw a job. On a printer, the printer is told to stop (after the commit), and
    whatever it left on the bed must be cleared before the next job."""
    if not _may_act(job, actor):
        raise NotFound(f"There is no print job {job.pk}.")
    if job.owner_id != actor.pk and not reason.strip():
        raise ValidationError("Say why you cancel this job: its owner is told.")
    reason = reason.strip() or f"Cancelled by {actor.username}."
    with transaction.atomic():
        current = PrintJob.objects.select_related("lab", "owner", "machine", "gcode").get(pk=job.pk)
        if current.status == S.AWAITING_REMOVAL:
            raise Conflict("This job has printed: confirm the part is removed instead of cancelling it.")
        if current.status not in PrintJob.OPEN:
            raise Conflict(f"This job is already {current.get_status_display().lower()}.")
        was_on_printer = current.status in PrintJob.ON_PRINTER
        if not _finish(
            current,
            S.CANCELLED,
            reason=reason,
            result=PrintRecord.Result.CANCELLED,
            from_statuses=[s for s in PrintJob.OPEN if s != S.AWAITING_REMOVAL],
        ):
            raise Conflict("The job changed state meanwhile; look again.")
        if was_on_printer and current.machine.has_connection:
            enqueue("machines.tasks.cancel_on_printer", current.machine_id, current.remote_name)
        elif current.status == S.AWAITING_OPERATOR:
            _record_manual_state(current.machine_id, "idle", "", f"hand-off withdrawn by {actor.username}")
        if current.owner_id != actor.pk:
            notify(user=current.owner, lab=current.lab, subject=f"Cancelled: {current.filename}", body=reason)
    job.refresh_from_db()
    return job


# -- the job's life on a printer -----------------------------------------------------------


def _end_timeline_row(job: PrintJob, now: datetime, *, printed: bool = True) -> None:
    """Give the machine's timeline back from now on: the print is over. A job that never
    printed leaves no trace on the timeline."""
    if not job.booking_id:
        return
    row = Booking.objects.filter(pk=job.booking_id, status__in=Booking.ACTIVE).first()
    if row is None:
        return
    if row.start >= now or not printed:
        Booking.objects.filter(pk=row.pk).update(status=Booking.Status.CANCELLED, reason="The print ended.")
    elif row.end > now:
        Booking.objects.filter(pk=row.pk).update(end=now)


def _write_record(job: PrintJob, result: str, reason: str, now: datetime) -> PrintRecord:
    gcode = job.gcode
    machine = job.machine
    return PrintRecord.objects.create(
        job=job,
        lab_id=job.lab_id,
        machine=machine,
        machine_name=machine.name if machine else "",
        owner_id=job.owner_id,
        owner_name=job.owner.username,
        design_id=job.design_id,
        design_name=job.design_name,
        path=job.path,
        commit_sha=job.commit_sha,
        blob_sha=job.blob_sha,
        gcode_sha=gcode.sha256 if gcode else "",
        slicer=gcode.slicer if gcode else "",
        profile_name=gcode.profile_name if gcode else "",
        profile_key=gcode.profile_key if gcode else "",
        material=job.material,
        colour=job.colour,
        copy=job.copies_done + 1,
        started_at=job.print_started_at,
        ended_at=now,
        result=result,
        reason=reason,
    )


def _bed_needs_clearing(machine_id: int, note: str) -> None:
    Printer.objects.filter(pk=machine_id).update(bed_clear=False, bed_note=note[:500])


def _finish(
    job: PrintJob, status: str, *, reason: str, result: str, from_statuses, token: str | None = None
) -> bool:
    """Move a job to a final state (failed, cancelled) by claim, and write what follows.

    A print that had started leaves a provenance record and a bed to clear. Must run
    inside a transaction; returns whether this call won the claim.
    """
    now = timezone.now()
    rows = PrintJob.objects.filter(pk=job.pk, status__in=list(from_statuses))
    if token is not None:
        rows = rows.filter(dispatch_token=token)
    if not rows.update(status=status, reason=reason, finished_at=now, print_ended_at=now):
        return False
    started = job.print_started_at is not None and job.status in PrintJob.ON_PRINTER
    if job.status in PrintJob.ON_PRINTER:
        _end_timeline_row(job, now, printed=started)
        if started:
            _write_record(job, result, reason, now)
            _bed_needs_clearing(job.machine_id, f"{job.filename} ({job.owner.username}) stopped: {reason}")
    return True


def job_started(job: PrintJob, token: str, *, manual: bool) -> bool:
    """The printer took the job (or, without network control, it was handed over)."""
    now = timezone.now()
    changes = (
        {"status": S.AWAITING_OPERATOR}
        if manual
        else {"status": S.PRINTING, "print_started_at": now, "progress": 0.0}
    )
    return bool(
        PrintJob.objects.filter(pk=job.pk, status=S.DISPATCHING, dispatch_token=token).update(**changes)
    )


def job_requeue(
    job: PrintJob, reason: str, *, token: str | None = None, from_statuses=(S.DISPATCHING,)
) -> bool:
    """Back to the queue, never having printed: the printer could not take it."""
    with transaction.atomic():
        rows = PrintJob.objects.filter(
            pk=job.pk, status__in=list(from_statuses), print_started_at__isnull=True
        )
        if token is not None:
            rows = rows.filter(dispatch_token=token)
        if not rows.update(
            status=S.QUEUED,
            machine=None,
            booking=None,
            dispatch_token="",
            remote_name="",
            claimed_at=None,
            progress=None,
            reason=reason,
        ):
            return False
        _end_timeline_row(job, timezone.now(), printed=False)
    logger.info("print job %s back in the queue: %s", job.pk, reason)
    return True


def job_lost(job: PrintJob, reason: str, *, token: str | None = None) -> bool:
    """The printer stopped answering while it had the job: wait until it answers again."""
    with transaction.atomic():
        rows = PrintJob.objects.filter(
            pk=job.pk, status__in=(S.DISPATCHING, S.AWAITING_OPERATOR, S.PRINTING, S.PAUSED)
        )
        if token is not None:
            rows = rows.filter(dispatch_token=token)
        if not rows.update(status=S.PRINTER_LOST, reason=reason):
            return False
        _notify_managers(
            job.lab,
            subject=f"Printer lost: {job.machine.name}",
            body=f"{job.filename} ({job.owner.username}): {reason}",
        )
        notify(
            user=job.owner, lab=job.lab, subject=f"Printer lost while printing {job.filename}", body=reason
        )
    return True


def job_progress(job: PrintJob, *, status: str, progress: float | None) -> bool:
    """Printing (or paused) on the printer, as it says; also the way back from 'lost'."""
    rows = PrintJob.objects.filter(
        pk=job.pk, status__in=(S.PRINTING, S.PAUSED, S.PRINTER_LOST, S.AWAITING_OPERATOR)
    )
    changes: dict[str, Any] = {"status": status, "progress": progress}
    if job.print_started_at is None:
        changes["print_started_at"] = timezone.now()
    if job.status == S.PRINTER_LOST:
        changes["reason"] = ""
    return bool(rows.update(**changes))


def job_failed(
    job: PrintJob,
    reason: str,
    *,
    result: str = PrintRecord.Result.FAILED,
    from_statuses=PrintJob.ON_PRINTER,
    token: str | None = None,
) -> bool:
    with transaction.atomic():
        won = _finish(job, S.FAILED, reason=reason, result=result, from_statuses=from_statuses, token=token)
        if won:
            notify(
                user=job.owner,
                lab=job.lab,
                subject=f"Failed: {job.filename} on {job.machine.name}",
                body=reason,
            )
    return won


def job_finished(
    job: PrintJob, *, from_statuses=(S.PRINTING, S.PAUSED, S.PRINTER_LOST, S.AWAITING_OPERATOR, S.DISPATCHING)
) -> bool:
    """The printer says the print ended well: record it, and wait for the bed to be cleared
    (or, with auto-continue, count the copy and carry on)."""
    now = timezone.now()
    with transaction.atomic():
        printer = Printer.objects.filter(pk=job.machine_id).first()
        auto = printer is not None and printer.after_print == Printer.AfterPrint.AUTO
        changes: dict[str, Any] = {"progress": 100.0, "print_ended_at": now, "reason": ""}
        if job.print_started_at is None:
            changes["print_started_at"] = job.claimed_at or now
        if auto:
            changes.update(_after_removal(job, now))
        else:
            changes["status"] = S.AWAITING_REMOVAL
        if not PrintJob.objects.filter(pk=job.pk, status__in=list(from_statuses)).update(**changes):
            return False
        job.print_started_at = job.print_started_at or changes["print_started_at"]
        _end_timeline_row(job, now)
        record = _write_record(job, PrintRecord.Result.DONE, "", now)
        if auto:
            PrintRecord.objects.filter(pk=record.pk).update(removed_at=now)
            _kick(job.lab_id)
        else:
            _bed_needs_clearing(job.machine_id, f"{job.filename} ({job.owner.username}) is ready to collect.")
            notify(
                user=job.owner,
                lab=job.lab,
                subject=f"Printed: {job.filename} is ready on {job.machine.name}",
                body="Collect it, then confirm the bed is clear so the printer takes the next job.",
            )
    return True


def _after_removal(job: PrintJob, now: datetime) -> dict[str, Any]:
    """The job's next state once a copy is off the bed: the next copy, or done."""
    if job.copies_done + 1 < job.copies:
        return {
            "status": S.QUEUED,
            "copies_done": F("copies_done") + 1,
            "queued_at": now,
            "booking": None,
            "dispatch_token": "",
            "claimed_at": None,
        }
    return {"status": S.DONE, "copies_done": F("copies_done") + 1, "finished_at": now}


def printer_confirm_cleared(*, machine: Machine, actor: User) -> Printer:
    """Someone at the printer says the bed is clear: the finished job is done (or its next
    copy queued) and the printer takes the next job."""
    require_member(machine.lab, actor)
    now = timezone.now()
    with transaction.atomic():
        printer = Printer.objects.select_for_update().filter(pk=machine.pk).first()
        if printer is None:
            raise NotFound(f"{machine.name} is not in the print queue.")
        job = (
            PrintJob.objects.filter(machine=machine, status=S.AWAITING_REMOVAL)
            .select_related("lab", "owner")
            .first()
        )
        if printer.bed_clear and job is None:
            raise Conflict(f"{machine.name}'s bed is already marked clear.")
        if job is not None:
            if not PrintJob.objects.filter(pk=job.pk, status=S.AWAITING_REMOVAL).update(
                **_after_removal(job, now)
            ):
                raise Conflict("The job changed state meanwhile; look again.")
            PrintRecord.objects.filter(job=job, removed_at__isnull=True).update(
                removed_at=now, removed_by=actor
            )
        Printer.objects.filter(pk=printer.pk).update(bed_clear=True, bed_note="", connect_tried_at=None)
        if not machine.has_connection:  # the operator's record of the printer starts afresh
            _record_manual_state(machine.pk, "idle", "", f"bed cleared by {actor.username}")
        _kick(machine.lab_id)
    printer.refresh_from_db()
    return printer


def print_job_record(*, job: PrintJob, actor: User, outcome: str, reason: str = "") -> PrintJob:
    """An operator's word on a job at a printer without network control: `started`,
    `finished` or `failed` (failed also works on any printer: the hub then stops it)."""
    if lab_role(job.lab, actor) != "manager" and job.owner_id != actor.pk:
        raise NotFound(f"There is no print job {job.pk}.")
    job = PrintJob.objects.select_related("lab", "owner", "machine", "gcode").get(pk=job.pk)
    manual = job.machine is not None and not job.machine.has_connection
    if outcome == "failed":
        if not reason.strip():
            raise ValidationError("Say what went wrong: the owner is told.")
        if not job_failed(
            job, reason, from_statuses=(S.AWAITING_OPERATOR, S.PRINTING, S.PAUSED, S.PRINTER_LOST)
        ):
            raise Conflict(f"This job is {job.get_status_display().lower()}: it is not on a printer.")
        if not manual:
            enqueue("machines.tasks.cancel_on_printer", job.machine_id, job.remote_name)
    elif not manual:
        raise ValidationError("This printer reports its own progress: only 'failed' can be recorded by hand.")
    elif outcome == "started":
        if not PrintJob.objects.filter(pk=job.pk, status=S.AWAITING_OPERATOR).update(
            status=S.PRINTING, print_started_at=timezone.now(), progress=None
        ):
            raise Conflict("This job is not waiting for an operator to start it.")
        _record_manual_state(job.machine_id, "printing", job.remote_name, f"started by {actor.username}")
    elif outcome == "finished":
        if not job_finished(job, from_statuses=(S.PRINTING, S.AWAITING_OPERATOR)):
            raise Conflict("This job is not printing.")
        _record_manual_state(
            job.machine_id, "idle", job.remote_name, f"finished, recorded by {actor.username}", progress=100
        )
    else:
        raise ValidationError("The outcome must be started, finished or failed.")
    if outcome == "failed" and manual:
        _record_manual_state(job.machine_id, "idle", "", f"failed, recorded by {actor.username}")
    job.refresh_from_db()
    return job


def _record_manual_state(
    machine_id: int, state: str, job_name: str, message: str, progress: float | None = None
) -> None:
    now = timezone.now()
    Printer.objects.filter(pk=machine_id).update(
        state=state,
        job_name=job_name,
        message=message[:500],
        progress=progress,
        seen_at=now,
        state_changed_at=now,
    )


def print_job_pause(*, job: PrintJob, actor: User, resume: bool = False) -> PrintJob:
    """Pause (or resume) a print on its printer, now; the poller records the new state."""
    from machines.dispatch import driver_for_machine
    from machines.drivers import PrinterError

    if not _may_act(job, actor):
        raise NotFound(f"There is no print job {job.pk}.")
    wanted = (S.PAUSED,) if resume else (S.PRINTING,)
    if job.status not in wanted:
        raise Conflict(
            f"This job is {job.get_status_display().lower()}: it cannot be {'resumed' if resume else 'paused'}."
        )
    driver = driver_for_machine(job.machine)
    try:
        driver.resume() if resume else driver.pause()
    except PrinterError as exc:
        raise Conflict(
            f"{job.machine.name} did not {'resume' if resume else 'pause'}: {exc.message}"
        ) from None
    new = S.PRINTING if resume else S.PAUSED
    PrintJob.objects.filter(pk=job.pk, status__in=wanted).update(status=new)
    job.refresh_from_db()
    return job


def new_token() -> str:
    return uuid.uuid4().hex


def remote_name(job: PrintJob, token: str) -> str:
    """The file name on the printer: unique per dispatch, so an earlier print of the same
    job (same name, idle at 100 %) is never mistaken for this one."""
    # Plain lower-case ASCII: a name the print server keeps as it is, so that the name it
    # reports is the one the hub compares with.
    stem = "".join(
        c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in Path(job.path).stem.lower()
    )
    stem = stem[:40] or "part"
    return f"fabhub-{job.pk}-{job.copies_done + 1}-{token[:8]}-{stem}.gcode"


def timeline_span(seconds: int | None) -> timedelta:
    """How long a print holds its machine's timeline: the estimate plus the margin (at
    least 5 minutes; an hour when there is no estimate at all)."""
    if seconds is None:
        return timedelta(hours=1)
    with_margin = seconds * (100 + settings.FABHUB_PRINT_TIMELINE_MARGIN_PERCENT) / 100
    return timedelta(seconds=max(300, math.ceil(with_margin / 60) * 60))
