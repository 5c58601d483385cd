"""A print job's state machine: every move of a job once it exists, and what follows each
move (the provenance record, the machine's timeline, the printer's bed flag, the people
told). Services, the dispatcher and the poller move jobs only through these functions;
the one claim made elsewhere is the dispatcher's `queued -> dispatching`, which must share
its transaction with the machine's timeline lock and row (the claim in dispatch.py).

Every move is a claim: a conditional `update()` on the job's status (and, for a
dispatched job, its `dispatch_token`) whose count is checked, so two workers, a worker
and a person, or two people acting on one job never both win. The winner alone writes
what follows, in the same transaction.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hub.models import User
from hub.queue import enqueue
from machines.models import Booking, Printer, PrintJob, PrintRecord
from machines.notifications import notify, notify_managers
from machines.printing import costs
from machines.records import print_record_credential_issue
from machines.spools import spool_use

logger = logging.getLogger(__name__)

S = PrintJob.Status
MAX_PREPARE_ATTEMPTS = 3


def new_token() -> str:
    return uuid.uuid4().hex


class NamedJob(Protocol):
    """What a job's file name on a printer is made of (a PrintJob, or the dispatcher's row)."""

    @property
    def pk(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def copies_done(self) -> int: ...


# What a remote name's stem replaces: all but lower-case ASCII letters, digits, - and _
# (one expression rather than a test per character: the dispatcher names 50 jobs a tick).
_NOT_PLAIN = re.compile(r"[^a-z0-9_-]")


def remote_name(job: NamedJob, token: str) -> str:
    """The file name on the printer: unique per dispatch, so an earlier print of the same
    job (same name, idle at 100 %) is never mistaken for this one."""
    # Plain lower-case ASCII: a name the print server keeps as it is, so that the name it
    # reports is the one the hub compares with.
    stem = _NOT_PLAIN.sub("-", Path(job.path).stem.lower())[:40] or "part"
    return f"fabhub-{job.pk}-{job.copies_done + 1}-{token[:8]}-{stem}.gcode"


def timeline_span(seconds: int | None) -> timedelta:
    """How long a print holds its machine's timeline: the estimate plus the margin (at
    least 5 minutes; an hour when there is no estimate at all)."""
    if seconds is None:
        return timedelta(hours=1)
    with_margin = seconds * (100 + settings.FABHUB_PRINT_TIMELINE_MARGIN_PERCENT) / 100
    return timedelta(seconds=max(300, math.ceil(with_margin / 60) * 60))


def kick_dispatch(lab_id: int) -> None:
    """A job joined the queue or a printer came free: dispatch now rather than at the next tick."""
    enqueue("machines.tasks.dispatch_print_jobs", lab_id)


def record_manual_state(
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
    record = PrintRecord.objects.create(
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
        # What the print used and cost; then the job's cost and credit settle (costs.py).
        **costs.print_usage(job, finished=result == PrintRecord.Result.DONE, ended_at=now),
    )
    costs.print_settled(job, record)
    return record


def _bed_needs_clearing(machine_id: int, note: str) -> None:
    Printer.objects.filter(pk=machine_id).update(bed_clear=False, bed_note=note[:500])


def finish(
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
            _bed_needs_clearing(
                job.printer_machine.pk, f"{job.filename} ({job.owner.username}) stopped: {reason}"
            )
    costs.job_release(job, status)  # what its remaining copies held
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
        notify_managers(
            job.lab,
            subject=f"Printer lost: {job.printer_machine.name}",
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
        won = finish(job, S.FAILED, reason=reason, result=result, from_statuses=from_statuses, token=token)
        if won:
            notify(
                user=job.owner,
                lab=job.lab,
                subject=f"Failed: {job.filename} on {job.printer_machine.name}",
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
        print_record_credential_issue(record)
        # The filament the print used comes off the spool loaded on the printer.
        if printer is not None:
            spool_use(
                printer=printer, grams=job.gcode.filament_g if job.gcode is not None else job.filament_g
            )
        if auto:
            PrintRecord.objects.filter(pk=record.pk).update(removed_at=now)
            kick_dispatch(job.lab_id)
        else:
            _bed_needs_clearing(
                job.printer_machine.pk, f"{job.filename} ({job.owner.username}) is ready to collect."
            )
            notify(
                user=job.owner,
                lab=job.lab,
                subject=f"Printed: {job.filename} is ready on {job.printer_machine.name}",
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


def prepare_failed(job: PrintJob, reason: str) -> PrintJob:
    with transaction.atomic():
        if PrintJob.objects.filter(pk=job.pk, status=S.PREPARING).update(
            status=S.FAILED, reason=reason, finished_at=timezone.now(), prepare_lease_until=None
        ):
            costs.job_release(job, "could not be prepared")
            notify(user=job.owner, lab=job.lab, subject=f"Could not prepare {job.filename}", body=reason)
    job.refresh_from_db()
    return job


# -- moves people ask for (the service checks their rights and tells whom it concerns) -------


def prepared_state(*, needs_approval: bool, now: datetime) -> dict[str, Any]:
    """Where a prepared job goes: into the queue, or to a manager first. For a job
    prepared as it is written (a small G-code, read while submitted) and for one
    prepared later (`job_prepared`) alike."""
    nxt = S.PENDING_APPROVAL if needs_approval else S.QUEUED
    return {"status": nxt, "queued_at": now if nxt == S.QUEUED else None}


def job_prepared(job: PrintJob, *, now: datetime) -> bool:
    """Sliced (or read) and within the lab's limits: into the queue, or to a manager first.
    The winner's `job` says so too (its caller need not read it back)."""
    changes = prepared_state(needs_approval=job.needs_approval, now=now) | {"prepare_lease_until": None}
    if not PrintJob.objects.filter(pk=job.pk, status=S.PREPARING).update(**changes):
        return False
    for name, value in changes.items():
        setattr(job, name, value)
    return True


def job_approved(job: PrintJob, *, actor: User, now: datetime) -> bool:
    return bool(
        PrintJob.objects.filter(pk=job.pk, status=S.PENDING_APPROVAL).update(
            status=S.QUEUED, queued_at=now, decided_by=actor, decided_at=now
        )
    )


def job_refused(job: PrintJob, *, actor: User, reason: str, now: datetime) -> bool:
    won = bool(
        PrintJob.objects.filter(pk=job.pk, status__in=(S.PENDING_APPROVAL, S.PREPARING)).update(
            status=S.REFUSED, reason=reason, decided_by=actor, decided_at=now, finished_at=now
        )
    )
    if won:
        costs.job_release(job, "refused")
    return won


def job_collected(job: PrintJob, *, now: datetime) -> bool:
    """The part is off the bed: the next copy, or done."""
    return bool(
        PrintJob.objects.filter(pk=job.pk, status=S.AWAITING_REMOVAL).update(**_after_removal(job, now))
    )


def job_operator_started(job: PrintJob) -> bool:
    """An operator started the handed-over job at a printer without network control."""
    return bool(
        PrintJob.objects.filter(pk=job.pk, status=S.AWAITING_OPERATOR).update(
            status=S.PRINTING, print_started_at=timezone.now(), progress=None
        )
    )


def job_paused(job: PrintJob, *, resume: bool = False) -> bool:
    """The printer paused (or resumed) the print when asked."""
    wanted = (S.PAUSED,) if resume else (S.PRINTING,)
    return bool(
        PrintJob.objects.filter(pk=job.pk, status__in=wanted).update(
            status=S.PRINTING if resume else S.PAUSED
        )
    )
