"""Writes of the print queue that people and tasks ask for: lab settings and printers,
submitting, preparing (slicing), deciding, cancelling, recording an operator's word.
docs/print-queue.md has the whole picture.

These functions check rights and inputs, then move the job through
`machines.printing.jobs` (claims whose count is checked) and tell whom it concerns. Work
that talks to a printer or runs the slicer happens outside transactions, through the
adapters (`machines.printing.drivers`, `machines.printing.slicer`).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from designs.selectors import design_blob_to_file, design_file, design_resolve, designs_visible_to
from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from hub.models import User
from hub.queue import enqueue
from machines.models import Lab, Machine, Printer, PrintGcode, PrintJob, PrintRecord, PrintSettings, Spool
from machines.notifications import notify, notify_managers
from machines.printing import checks, costs, jobs, prices, slicer
from machines.printing import selectors as ps
from machines.printing.connections import driver_for_machine
from machines.printing.drivers import PrinterError
from machines.printing.files import gcode_path, store_file
from machines.printing.gcode import GcodeInfo, read_gcode, read_gcode_comments
from machines.selectors import (
    lab_role,
    qualification_for,
    require_manager,
    require_member,
    require_member_role,
)

logger = logging.getLogger(__name__)

S = PrintJob.Status
MAX_COPIES = 100
# An uploaded G-code up to this size is read (estimates, extents) while it is submitted,
# and the job joins the queue in the submission's own transaction; a larger one is read in
# the background (`print_job_prepare`). The hub's reader walks ~25 MB of G-code a second
# (measured on the 2-core build machine: 66 kB in 2.3 ms of CPU, 257 kB of PrusaSlicer
# output in 9.5 ms), so this stays well under the ~100 ms a request may spend.
READ_AT_SUBMIT_BYTES = 128 * 1024
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
SETTINGS_FIELDS = (
    "requires_approval",
    "max_active_jobs",
    "weekly_print_minutes",
    "slicer",
    *prices.PRICE_FIELDS,
)


# -- settings and printers -------------------------------------------------------------------


@transaction.atomic
def print_settings_update(*, lab: Lab, actor: User, **fields: Any) -> PrintSettings:
    require_manager(lab, actor)
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown print settings: {', '.join(sorted(unknown))}.")
    if "slicer" in fields and fields["slicer"] not in PrintSettings.Slicer.values:
        raise ValidationError(f"'slicer' must be one of {', '.join(PrintSettings.Slicer.values)}.")
    fields = prices.clean_price_settings(lab, fields)
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
        # Another material or colour by hand: the spool the hub thought loaded is not.
        Spool.objects.filter(printer=printer).exclude(
            material=printer.material, colour=printer.colour
        ).update(printer=None)
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
    the lab's per-member limits. A mesh, or a G-code larger than READ_AT_SUBMIT_BYTES, is
    then prepared in the background; a smaller G-code is read here and the job queued (or
    put to a manager) at once, as its preparation would have.
    """
    # The member's role, the lab's print settings and prices: one read for every check and
    # the estimate below.
    reads = ps.submission_reads(lab, owner)
    role, settings_row = reads.role, reads.settings
    require_member_role(lab, role)
    if (design is None) == (upload is None):
        raise ValidationError(
            "Give either a design file (design, path and revision) or a G-code file to upload."
        )
    name = upload.name if upload is not None else path
    if not name:
        raise ValidationError("Give the path of the file to print.")
    file_kind = checks.file_kind(name)
    if upload is not None and file_kind != PrintJob.FileKind.GCODE:
        raise ValidationError("Only G-code can be uploaded; send meshes from a design, pinned to a commit.")
    if machine_kind not in Machine.Kind.values:
        raise ValidationError(f"{machine_kind!r} is not a kind of machine.")
    if priority not in PrintJob.Priority.values:
        raise ValidationError(
            f"Priority must be one of {', '.join(str(v) for v in PrintJob.Priority.values)}."
        )
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
        checks.require_slicer(lab, settings_row)

    compatible = ps.compatible_printers(lab, kind=machine_kind, material=material, nozzle_mm=nozzle)
    if not compatible:
        label = Machine.Kind(machine_kind).label
        kind_label = (
            label if label[:2].isupper() else label[0].lower() + label[1:]
        )  # "FDM printer", "laser cutter"
        with_nozzle = f" with a {nozzle} mm nozzle" if nozzle is not None else ""
        raise ValidationError(f"No {kind_label} of {lab.name} takes queued jobs in {material}{with_nozzle}.")
    today = timezone.now().astimezone(lab.zone).date()
    printers = [
        p
        for p in compatible
        if not p.machine.requires_qualification or qualification_for(owner, p.machine, today) is not None
    ]
    if not printers:
        raise PermissionDenied(
            f"Every printer of {lab.name} that could print this needs a training: ask a manager to record "
            "your qualification."
        )

    source: dict[str, Any] = {}
    if design is not None:
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
            source["size_mm"] = checks.mesh_size(design, sha, path, entry.sha, printers)
    else:
        head = upload.read(4096)
        upload.seek(0)
        checks.check_gcode_text(head, upload.name)

    if upload is not None and upload.size > READ_AT_SUBMIT_BYTES:
        # Before storing a large file the limits refuse anyway; they are checked again with
        # the job's write, below.
        checks.check_limits(lab, owner, settings_row)
    needs_approval = settings_row.requires_approval and role != "manager"
    state: dict[str, Any] = {"status": S.PREPARING}
    info: GcodeInfo | None = None  # what an uploaded G-code says of itself
    read: GcodeInfo | None = None  # the same, when the whole file was read here
    if upload is not None:  # stored only once everything else passed
        sha, size = store_file(upload)
        source = {"path": upload.name.replace("\\", "/").rsplit("/", 1)[-1][:255], "source_sha": sha}
        if size <= READ_AT_SUBMIT_BYTES:
            info = read = stored_gcode_info(sha)
            # Prepared here, as `print_job_prepare` would: the weekly hours with its
            # estimate (checked below, with the job's write), its figures on the job, and
            # its state after preparing.
            state = jobs.prepared_state(needs_approval=needs_approval, now=timezone.now())
            source |= _read_figures(read)
        else:
            # Only the slicer's comments now (a bounded read); the whole file is read in
            # the background, which refines the estimate and the hold.
            info = read_gcode_comments(gcode_path(sha))
    # Cost: the estimate now (refined once sliced or read), held from a balance with
    # credits. A G-code read here is priced on every printer that could take it, as its
    # preparation would (`costs.sliced_estimate`): its hold is final.
    source |= costs.submission_estimate(
        printers=compatible if read is not None else printers,
        material=material,
        copies=copies,
        volume_mm3=(
            costs.mesh_volume(design, sha=source["commit_sha"], path=path, blob_sha=source["blob_sha"])
            if file_kind == PrintJob.FileKind.MESH
            else None
        ),
        gcode_info=info,
        settings_row=settings_row,
        material_prices=reads.material_prices,
    )
    with transaction.atomic():
        # With the job's write, no other job of this member's checked meanwhile.
        checks.hold_member_limits(lab, owner)
        checks.check_limits(
            lab, owner, settings_row, extra_seconds=(read.estimated_seconds or 0) * copies if read else 0
        )
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
            needs_approval=needs_approval,
            **state,
            **source,
        )
        if read is not None:  # its G-code, as the preparation would store it
            PrintGcode.objects.create(
                job=job, profile_key="", **_upload_gcode_fields(read, sha=sha, size=size)
            )
        costs.job_hold(job, settings_row=settings_row)
        if read is not None:
            _prepared(job)
        else:
            _queue_prepare(job)
    return job


def _extents(info: GcodeInfo) -> dict[str, list[float]] | None:
    """Where a read G-code moves (the job's `size_mm`, for the fit check), if it moves at all."""
    return {"low": list(info.low), "high": list(info.high)} if info.low and info.high else None


def _read_figures(info: GcodeInfo) -> dict[str, Any]:
    """A read G-code's figures as its job keeps them."""
    return {
        "estimated_seconds": info.estimated_seconds,
        "filament_mm": info.filament_mm,
        "filament_g": info.filament_g,
        "size_mm": _extents(info),
    }


def _upload_gcode_fields(info: GcodeInfo, *, sha: str, size: int) -> dict[str, Any]:
    """The PrintGcode of a G-code job, but its profile key ("": any printer takes it)."""
    return {
        "sha256": sha,
        "size": size,
        "estimated_seconds": info.estimated_seconds,
        "estimate_source": info.estimate_source,
        "filament_mm": info.filament_mm,
        "filament_g": info.filament_g,
    }


def _prepared(job: PrintJob) -> None:
    """A job just prepared: the dispatcher looks at once, or the lab's managers are asked
    (with the estimate). In the caller's transaction."""
    if not job.needs_approval:
        jobs.kick_dispatch(job.lab_id)
        return
    notify_managers(
        job.lab,
        but=job.owner,
        subject=f"{job.owner.username} asks to print {job.filename} at {job.lab.name}",
        body=f"Estimated {_duration(job.estimated_seconds)}, {job.copies} cop{'y' if job.copies == 1 else 'ies'}. {job.notes}",
    )


@lru_cache(maxsize=64)
def stored_gcode_info(sha256: str) -> GcodeInfo:
    """What a stored G-code file says (estimates, extents), read once per process: stored
    files are named by their content's hash, so the answer never changes (submitting an
    upload and preparing it read the same file moments apart)."""
    return read_gcode(gcode_path(sha256))


def _queue_prepare(job: PrintJob) -> None:

    enqueue("machines.tasks.prepare_print_job", job.pk)


def _source_to_file(job: PrintJob, target: Path) -> None:
    """Write the job's source file (a design blob, LFS resolved; or the upload) to `target`."""
    if not job.design_name:
        shutil.copyfile(gcode_path(job.source_sha), target)
        return
    if job.design is None:
        raise ValidationError(f"The design {job.design_name} was deleted.")
    design_blob_to_file(job.design, blob_sha=job.blob_sha, target=target)


# -- preparing (slicing) -------------------------------------------------------------------


def _claim_prepare(job_id: int, now: datetime) -> bool:
    lease = timedelta(seconds=settings.FABHUB_SLICER_TIME_LIMIT_S * 2 + 60)
    return bool(
        PrintJob.objects.filter(pk=job_id, status=S.PREPARING)
        .filter(Q(prepare_lease_until__isnull=True) | Q(prepare_lease_until__lt=now))
        .update(prepare_lease_until=now + lease, prepare_attempts=F("prepare_attempts") + 1)
    )


def _slice_for(job: PrintJob, printer: Printer, source: Path, work: Path) -> PrintGcode:
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
    now = timezone.now()
    if not _claim_prepare(job_id, now):
        return None
    # The lab's print settings with it: the limits below read them.
    job = PrintJob.objects.select_related("lab__print_settings", "owner", "design__owner").get(pk=job_id)
    work: Path | None = None
    try:
        if job.file_kind == PrintJob.FileKind.GCODE and not job.design_name:
            # An upload is stored already, under its hash: read it where it is, with no
            # work folder (making and removing one cost more than the rest of this).
            sha = job.source_sha
            info = stored_gcode_info(sha)
            size = gcode_path(sha).stat().st_size
        else:
            work = folder = Path(tempfile.mkdtemp(prefix="fabhub-prepare-"))
            source = folder / _work_name(job)
            _source_to_file(job, source)
        if job.file_kind == PrintJob.FileKind.GCODE and job.design_name:
            info = read_gcode(source)
            with source.open("rb") as f:
                sha, size = store_file(f)
        if job.file_kind == PrintJob.FileKind.GCODE:
            gcode, _ = PrintGcode.objects.get_or_create(
                job=job, profile_key="", defaults=_upload_gcode_fields(info, sha=sha, size=size)
            )
            gcodes = [gcode]
            size_mm = _extents(info)
        else:
            printers = [
                p
                for p in ps.compatible_printers(
                    job.lab, kind=job.machine_kind, material=job.material, nozzle_mm=job.nozzle_mm
                )
                if ps.job_fits(job.size_mm, p)
            ]
            if not printers:
                return jobs.prepare_failed(job, "No printer of the lab can take this job any more.")
            by_profile = {p.profile_key: p for p in printers}
            gcodes = [_slice_for(job, p, source, folder) for p in by_profile.values()]
            size_mm = job.size_mm
    except slicer.SlicerError as exc:
        if exc.retryable and job.prepare_attempts < jobs.MAX_PREPARE_ATTEMPTS:
            PrintJob.objects.filter(pk=job.pk, status=S.PREPARING).update(prepare_lease_until=None)
            raise
        return jobs.prepare_failed(job, exc.message)
    except (OSError, ValidationError) as exc:
        return jobs.prepare_failed(job, f"The file could not be read: {getattr(exc, 'message', exc)}")
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    estimates = [g.estimated_seconds for g in gcodes if g.estimated_seconds is not None]
    estimate = max(estimates) if estimates else None
    first = gcodes[0]
    # Read with the job, moments ago; after slicing (minutes, maybe), read again. The limits
    # and the cost estimate below all use this one read.
    settings_row = (
        ps.print_settings_of(job.lab)
        if job.file_kind == PrintJob.FileKind.MESH
        else ps.print_settings_read_with(job.lab)
    )
    with transaction.atomic():
        checks.hold_member_limits(job.lab, job.owner)
        PrintJob.objects.filter(pk=job.pk).update(
            estimated_seconds=estimate,
            filament_mm=first.filament_mm,
            filament_g=first.filament_g,
            size_mm=size_mm,
        )
        try:
            checks.check_limits(
                job.lab,
                job.owner,
                settings_row,
                extra_seconds=(estimate or 0) * job.copies,
                exclude_id=job.pk,
            )
        except ValidationError as exc:
            return jobs.prepare_failed(job, exc.message)
        try:
            costs.job_estimate_refined(
                job, costs.sliced_estimate(job, gcodes, settings_row=settings_row), settings_row=settings_row
            )
        except ValidationError as exc:  # a balance too short for the new estimate
            return jobs.prepare_failed(job, f"Once sliced, the job costs more: {exc.message}")
        moved = jobs.job_prepared(job, now=now)
        if moved and not settings_row.credits_enabled:
            # The job as written here and by job_prepared (with credits, its hold moved
            # too): no need to read it back.
            job.estimated_seconds, job.size_mm = estimate, size_mm
            job.filament_mm, job.filament_g = first.filament_mm, first.filament_g
        else:
            job.refresh_from_db()
        if moved:
            _prepared(job)
    return job


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "unknown time"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{max(1, math.ceil(rest / 60))} min"


def print_job_slice_for(*, job_id: int, machine_id: int) -> PrintGcode | None:
    """Slice a waiting mesh job for one more printer's profile (its profile changed, or it
    joined the queue after the job was prepared)."""
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
    except (slicer.SlicerError, OSError, ValidationError) as exc:
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
    if not jobs.job_approved(job, actor=actor, now=timezone.now()):
        raise Conflict("This job is no longer waiting for approval.")
    job.refresh_from_db()
    notify(user=job.owner, lab=job.lab, subject=f"Approved: {job.filename} is in {job.lab.name}'s queue")
    jobs.kick_dispatch(job.lab_id)
    return job


@transaction.atomic
def print_job_refuse(*, job: PrintJob, actor: User, reason: str) -> PrintJob:
    require_manager(job.lab, actor)
    if not reason.strip():
        raise ValidationError("Say why the job is refused: its owner is told.")
    if not jobs.job_refused(job, actor=actor, reason=reason, now=timezone.now()):
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
        if not jobs.finish(
            current,
            S.CANCELLED,
            reason=reason,
            result=PrintRecord.Result.CANCELLED,
            from_statuses=[s for s in PrintJob.OPEN if s != S.AWAITING_REMOVAL],
        ):
            raise Conflict("The job changed state meanwhile; look again.")
        if was_on_printer and current.printer_machine.has_connection:
            enqueue("machines.tasks.cancel_on_printer", current.machine_id, current.remote_name)
        elif current.status == S.AWAITING_OPERATOR:
            jobs.record_manual_state(
                current.printer_machine.pk, "idle", "", f"hand-off withdrawn by {actor.username}"
            )
        if current.owner_id != actor.pk:
            notify(user=current.owner, lab=current.lab, subject=f"Cancelled: {current.filename}", body=reason)
    job.refresh_from_db()
    return job


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
            if not jobs.job_collected(job, now=now):
                raise Conflict("The job changed state meanwhile; look again.")
            PrintRecord.objects.filter(job=job, removed_at__isnull=True).update(
                removed_at=now, removed_by=actor
            )
        Printer.objects.filter(pk=printer.pk).update(bed_clear=True, bed_note="", connect_tried_at=None)
        if not machine.has_connection:  # the operator's record of the printer starts afresh
            jobs.record_manual_state(machine.pk, "idle", "", f"bed cleared by {actor.username}")
        jobs.kick_dispatch(machine.lab_id)
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
        if not jobs.job_failed(
            job, reason, from_statuses=(S.AWAITING_OPERATOR, S.PRINTING, S.PAUSED, S.PRINTER_LOST)
        ):
            raise Conflict(f"This job is {job.get_status_display().lower()}: it is not on a printer.")
        if not manual:
            enqueue("machines.tasks.cancel_on_printer", job.machine_id, job.remote_name)
    elif not manual:
        raise ValidationError("This printer reports its own progress: only 'failed' can be recorded by hand.")
    elif outcome == "started":
        if not jobs.job_operator_started(job):
            raise Conflict("This job is not waiting for an operator to start it.")
        jobs.record_manual_state(
            job.printer_machine.pk, "printing", job.remote_name, f"started by {actor.username}"
        )
    elif outcome == "finished":
        if not jobs.job_finished(job, from_statuses=(S.PRINTING, S.AWAITING_OPERATOR)):
            raise Conflict("This job is not printing.")
        jobs.record_manual_state(
            job.printer_machine.pk,
            "idle",
            job.remote_name,
            f"finished, recorded by {actor.username}",
            progress=100,
        )
    else:
        raise ValidationError("The outcome must be started, finished or failed.")
    if outcome == "failed" and manual:
        jobs.record_manual_state(job.printer_machine.pk, "idle", "", f"failed, recorded by {actor.username}")
    job.refresh_from_db()
    return job


def print_job_pause(*, job: PrintJob, actor: User, resume: bool = False) -> PrintJob:
    """Pause (or resume) a print on its printer, now; the poller records the new state."""
    if not _may_act(job, actor):
        raise NotFound(f"There is no print job {job.pk}.")
    wanted = (S.PAUSED,) if resume else (S.PRINTING,)
    if job.status not in wanted:
        raise Conflict(
            f"This job is {job.get_status_display().lower()}: it cannot be {'resumed' if resume else 'paused'}."
        )
    driver = driver_for_machine(job.printer_machine)
    try:
        driver.resume() if resume else driver.pause()
    except PrinterError as exc:
        raise Conflict(
            f"{job.printer_machine.name} did not {'resume' if resume else 'pause'}: {exc.message}"
        ) from None
    jobs.job_paused(job, resume=resume)
    job.refresh_from_db()
    return job


DELETED_ACCOUNT_NAME = "(deleted account)"


def print_jobs_of_leaving_account(user: User) -> None:
    """An account is being deleted (hub.accounts): refuse while one of its jobs is on a
    printer (someone must take the part off); its other jobs go with it, and the lab's
    print records stay, no longer naming the person."""
    on_printer = PrintJob.objects.filter(owner=user, status__in=PrintJob.ON_PRINTER).count()
    if on_printer:
        raise Conflict(
            f"{on_printer} of your print jobs is on a printer: cancel it or wait until it is "
            "done and taken off, then delete your account."
        )
    PrintRecord.objects.filter(owner=user).update(owner_name=DELETED_ACCOUNT_NAME)
