"""What a print job must pass before it joins the queue (and again once its estimate is
known): the kind of file, G-code that looks like G-code, a slicer for a mesh, a printer
the mesh fits, and the lab's limits per member. Each refusal says what to do instead."""

from __future__ import annotations

from django.db import connection

from designs.selectors import analyses_for_blobs, declared_units, figures_at, is_mesh_path
from designs.services import analyses_queue
from hub.exceptions import Conflict, ValidationError
from hub.models import User
from machines.models import Lab, LabMembership, Printer, PrintJob, PrintSettings
from machines.printing import selectors as ps
from machines.printing.slicer import SLICEABLE, slicer_installed

GCODE_SUFFIXES = (".gcode", ".gco", ".g", ".gc")


def file_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(GCODE_SUFFIXES):
        return PrintJob.FileKind.GCODE
    if lower.endswith(SLICEABLE):
        return PrintJob.FileKind.MESH
    if lower.endswith(".bgcode"):
        raise ValidationError(
            f"{name} is binary G-code, which the hub cannot read: export plain-text G-code."
        )
    if is_mesh_path(name):
        raise ValidationError(f"{name} is a mesh the slicer cannot read: export it as STL, 3MF or OBJ.")
    raise ValidationError(
        f"{name} is neither a mesh (STL, 3MF, OBJ, AMF) nor G-code: the queue prints only those."
    )


def check_gcode_text(head: bytes, name: str) -> None:
    if b"\0" in head or not head.strip():
        raise ValidationError(f"{name} does not look like G-code (it is empty or binary).")
    text = head.decode("utf-8", "replace")
    lines = [line.split(";", 1)[0].strip().upper() for line in text.splitlines()]
    if not any(line[:1] in ("G", "M", "T") and line[1:2].isdigit() for line in lines):
        raise ValidationError(f"{name} does not look like G-code: no G or M command in its first lines.")


def require_slicer(lab: Lab, settings_row: PrintSettings) -> None:
    """`settings_row`: the lab's print settings, as the caller read them."""
    if settings_row.slicer == PrintSettings.Slicer.NONE or not slicer_installed():
        raise ValidationError(
            f"{lab.name} has no slicer installed, so it takes G-code only: slice the part yourself "
            "and send the .gcode file (G-code jobs still work)."
        )


def mesh_size(design, sha: str, path: str, blob_sha: str, printers: list[Printer]) -> dict:
    """The mesh analysis of the file; refuses a file that fits none of `printers`."""
    row = analyses_for_blobs([blob_sha]).get(blob_sha)
    if row is None:
        analyses_queue(design=design, commits=[sha])
        raise Conflict(f"{path} has not been analysed yet; it is queued now. Try again in a minute.")
    if row.status in ("pending", "running"):
        raise Conflict(f"{path} is still being analysed. Try again in a minute.")
    if row.status != "done" or not row.figures:
        raise ValidationError(
            f"{path} cannot be printed: the mesh analysis failed ({row.reason or 'no reason given'})."
        )
    units = declared_units(design, sha=sha, paths=[path]).get(path)
    figures = figures_at(row.figures, units)
    if figures is None:  # figures_at gives back figures when it is given some: not reached
        raise ValidationError(f"{path} cannot be printed: the mesh analysis has no figures.")
    size = {"obb": [round(float(v), 3) for v in figures["obb_size"]]}
    if not any(ps.job_fits(size, p) for p in printers):
        volumes = [(p, volume) for p in printers if (volume := p.build_volume)]
        biggest = max(volumes, key=lambda pv: sorted(pv[1]), default=None)
        dims = " × ".join(f"{v:g}" for v in size["obb"])
        room = (
            f" (the largest is {biggest[0].machine.name}: {' × '.join(f'{v:g}' for v in biggest[1])} mm)"
            if biggest
            else ""
        )
        raise ValidationError(f"{path} ({dims} mm) does not fit any printer that could print it{room}.")
    return size


def hold_member_limits(lab: Lab, owner: User) -> None:
    """Make the member's limits at the lab this transaction's until it ends: call it inside
    `transaction.atomic()` before `check_limits` and the write it allows, so that two jobs
    racing (two submissions, or a submission and a preparation) are checked one after the
    other. PostgreSQL: the membership row, locked. SQLite: every transaction already holds
    the write lock from its start (`transaction_mode` IMMEDIATE), so there is nothing to add.
    """
    if connection.features.has_select_for_update:
        list(LabMembership.objects.select_for_update().filter(lab=lab, user=owner).values_list("pk"))


def check_limits(
    lab: Lab,
    owner: User,
    settings_row: PrintSettings,
    *,
    extra_seconds: int = 0,
    exclude_id: int | None = None,
) -> None:
    """The lab's limits per member: jobs open at once (for a new job: `exclude_id` None),
    then the hours of this lab week with `extra_seconds` more (a job's estimate, once it
    is known)."""
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
