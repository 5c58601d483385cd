"""The print queue's moving parts: the dispatcher, the send task, the poller, the sweeper.

- `dispatch_tick` gives each idle printer (bed clear, not booked by a person now, not
  holding a job) the best queued job it can take whose estimate fits before the
  machine's next timeline row and, unless the lab allows unattended prints, before the
  lab closes. What it checks are the predicates of `machines.printing.waiting`, which
  also say why a job waits. The claim is one transaction: the machine's timeline
  lock, a conditional update of the job (`status=queued` → `dispatching`, with a fresh
  `dispatch_token`) and the job's row on the timeline. The printer is told only after
  that commits (`print_job_send`, queued on commit). Two dispatchers on two machines
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
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, When
from django.utils import timezone

from hub.exceptions import Conflict
from hub.queue import enqueue
from machines.models import Booking, Machine, Notification, Printer, PrintGcode, PrintJob, PrintRecord
from machines.notifications import notify
from machines.printing import jobs
from machines.printing.connections import driver_for_machine
from machines.printing.drivers import PrinterDriver, PrinterError, PrinterState, PrinterStatus
from machines.printing.files import gcode_path
from machines.printing.waiting import (
    CANDIDATES_PER_PRINTER,
    Floor,
    job_blocker,
    match_blocker,
    printer_blocker,
)
from machines.printing.waiting import LOOKAHEAD as LOOKAHEAD
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


def idle_printers(*, now: datetime, lab_id: int | None = None) -> list[Printer]:
    """Printers that may take a job now: in service, taking jobs, bed clear, holding no
    job, and (if networked) seen idle recently. The query of `waiting.printer_state_blocker`
    (tests hold the two to the same answer)."""
    fresh = now - timedelta(seconds=settings.FABHUB_PRINT_STATE_MAX_AGE_S)
    holding = PrintJob.objects.filter(machine=OuterRef("pk"), status__in=PrintJob.ON_PRINTER)
    rows = (
        Printer.objects.select_related("machine", "machine__lab")
        .filter(accepts_jobs=True, bed_clear=True, machine__status=Machine.Status.AVAILABLE)
        .filter(
            # Without network control, the operator's record must not say it is busy.
            Q(machine__connection_secret="", machine__agent__isnull=True)
            & ~Q(state__in=[s.value for s in PrinterState if s.has_active_job])
            | Q(state=PrinterState.IDLE.value, seen_at__gte=fresh)
            # Via an agent: the agent's syncs are the freshness (a change it reports is
            # reconciled at once), so an idle printer costs the poller nothing.
            | Q(
                state=PrinterState.IDLE.value,
                machine__agent__revoked_at__isnull=True,
                machine__agent__catching_up=False,
                machine__agent__last_seen_at__gte=now - timedelta(seconds=settings.FABHUB_AGENT_SILENT_S),
            )
        )
        .filter(~Exists(holding))
        .order_by("pk")
    )
    if lab_id is not None:
        rows = rows.filter(machine__lab_id=lab_id)
    return list(rows)


def dispatch_tick(*, now: datetime | None = None, lab_id: int | None = None) -> list[int]:
    """Give idle printers their next job; return the ids of the jobs claimed."""
    now = now or timezone.now()
    printers = idle_printers(now=now, lab_id=lab_id)
    if not printers:
        return []
    floor = Floor.read(now=now, printers=printers)
    claimed = []
    for printer in printers:
        if printer_blocker(printer, floor) is not None:
            continue  # a person (or maintenance) has the machine now
        job_id = _dispatch_to(printer, floor)
        if job_id is not None:
            claimed.append(job_id)
    return claimed


def _candidates(printer: Printer, starving_before: datetime) -> list[PrintJob]:
    """The printer's best queued jobs: starving ones first (oldest first), then by
    priority and age (`waiting.candidate_order`). Both reads are ranges of the
    `print_job_queue` index; `waiting.match_blocker` is what they select on."""
    machine = printer.machine
    queued = (
        PrintJob.objects.filter(
            status=S.QUEUED, lab_id=machine.lab_id, machine_kind=machine.kind, material=printer.material
        )
        .filter(Q(nozzle_mm__isnull=True) | Q(nozzle_mm=printer.nozzle_mm))
        .filter(Q(colour="") | Q(colour=printer.colour))
        .only(
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
    )
    starving = list(
        queued.filter(queued_at__lt=starving_before).order_by("queued_at", "pk")[:CANDIDATES_PER_PRINTER]
    )
    seen = {j.pk for j in starving}
    ranked = [
        j
        for j in queued.order_by("-priority", "queued_at", "pk")[:CANDIDATES_PER_PRINTER]
        if j.pk not in seen
    ]
    return starving + ranked


def _dispatch_to(printer: Printer, floor: Floor) -> int | None:
    candidates = _candidates(printer, floor.starving_before)
    if not candidates:
        return None
    gcodes = {
        g.job_id: g
        for g in PrintGcode.objects.filter(
            job_id__in=[j.pk for j in candidates], profile_key__in=["", printer.profile_key]
        )
    }
    for job in candidates:
        gcode = gcodes.get(job.pk)
        if match_blocker(job, printer) is not None or job_blocker(job, printer, floor, gcode) is not None:
            continue
        assert gcode is not None  # job_blocker refuses a job without G-code for this printer
        span = jobs.timeline_span(gcode.estimated_seconds)
        if _claim(job, printer, gcode, now=floor.now, span=span):
            return job.pk
    return None


def _claim(job: PrintJob, printer: Printer, gcode: PrintGcode, *, now: datetime, span: timedelta) -> bool:
    """Claim `job` for `printer` and put it on the machine's timeline, in one transaction;
    queue the send for after the commit. False if anything moved meanwhile."""

    token = jobs.new_token()
    end = now + span
    try:
        with transaction.atomic():
            machine = timeline_lock(printer.pk)
            if machine.status != Machine.Status.AVAILABLE:
                return False
            holding = PrintJob.objects.filter(machine=OuterRef("pk"), status__in=PrintJob.ON_PRINTER)
            if (
                not Printer.objects.filter(pk=printer.pk, accepts_jobs=True, bed_clear=True)
                .filter(~Exists(holding))
                .exists()
            ):
                return False  # changed since the tick read it: taken, or its bed needs clearing
            if collision(machine, now, end) is not None:
                return False
            waiting = PrintJob.objects.filter(pk=job.pk, status=S.QUEUED)
            if connection.features.has_select_for_update_skip_locked:
                # Another dispatcher holds this job's row: it is taking it; do not wait.
                if not waiting.select_for_update(skip_locked=True).values_list("pk", flat=True):
                    return False
            if not waiting.update(
                status=S.DISPATCHING,
                machine=machine,
                gcode=gcode,
                dispatch_token=token,
                claimed_at=now,
                remote_name=jobs.remote_name(job, token),
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
            enqueue("machines.tasks.send_print_job", job.pk, token)
    except Conflict:
        return False
    logger.info("print job %s claimed for %s", job.pk, printer.machine)
    return True


# -- sending ---------------------------------------------------------------------------------


def print_job_send(*, job_id: int, token: str) -> str:
    """Send a claimed job to its printer and start it; returns what happened.

    Runs after the claim committed. Only the dispatch named by `token` may act: a second
    delivery of this task, or one that the sweeper superseded, changes nothing.
    """
    job = (
        PrintJob.objects.select_related("lab", "owner", "machine", "machine__lab", "gcode")
        .filter(pk=job_id)
        .first()
    )
    if job is None or job.status != S.DISPATCHING or job.dispatch_token != token:
        return "stale"
    now = timezone.now()
    if not PrintJob.objects.filter(pk=job.pk, status=S.DISPATCHING, dispatch_token=token).update(
        claimed_at=now
    ):
        return "stale"
    machine = job.printer_machine
    manual = not machine.has_connection
    try:
        driver = driver_for_machine(machine)
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
        # It may or may not have started: the poller finds out when the printer answers.
        _unreachable(machine.pk, again)
        jobs.job_lost(
            job, f"{machine.name} stopped answering while the job was sent: {error.message}", token=token
        )
        return "lost"
    if machine.has_connection:
        _observed(machine.pk, status)
    if status.job_name == job.remote_name and (status.state.has_active_job or status.progress == 100):
        jobs.job_started(job, token, manual=not machine.has_connection)
        return "started"
    if status.state.has_active_job or error.retryable:
        # Busy with something else (a print started at the printer), or not ready yet:
        # the job never started here, so any printer may have it.
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
    if Notification.objects.filter(booking=booking, subject__startswith=OVERRUN_SUBJECT).exists():
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
