"""Printers without network control are run by people (started, finished, failed); a job
can be cancelled at every stage; and the sweeper takes over work whose worker died."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.exceptions import Conflict, NotFound, ValidationError
from hub.models import Notification
from machines.models import Booking, Printer, PrintJob, PrintRecord
from machines.printing import dispatch
from machines.printing import services as printing
from tests.factories import UserFactory
from tests.machines.factories import add_member
from tests.printing.factories import make_printer, queued_job

pytestmark = pytest.mark.django_db
S = PrintJob.Status


@pytest.fixture
def printer(lab):
    return make_printer(lab)


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return dispatch.dispatch_tick()

    return run


def fresh(row):
    row.refresh_from_db()
    return row


def test_an_operator_starts_and_finishes_a_job_by_hand(lab, alice, bob, printer, tmp_path, tick):
    job = queued_job(lab, bob, tmp_path)
    tick()
    assert fresh(printer).state == "awaiting_operator" and printer.job_name == fresh(job).remote_name
    printing.print_job_record(job=job, actor=alice, outcome="started")
    assert fresh(job).status == S.PRINTING and job.print_started_at is not None
    assert fresh(printer).message == "started by alice"
    printing.print_job_record(job=job, actor=bob, outcome="finished")  # the owner may say so too
    assert fresh(job).status == S.AWAITING_REMOVAL
    record = PrintRecord.objects.get(job=job)
    assert (record.result, record.machine_name, record.owner_name, record.path) == (
        "done",
        "MK4",
        "bob",
        "part.gcode",
    )
    assert record.gcode_sha == job.gcode.sha256 and record.started_at == job.print_started_at


def test_an_operator_records_a_failure_with_its_reason(lab, alice, bob, printer, tmp_path, tick):
    job = queued_job(lab, bob, tmp_path)
    tick()
    printing.print_job_record(job=job, actor=alice, outcome="started")
    with pytest.raises(ValidationError, match="Say what went wrong"):
        printing.print_job_record(job=job, actor=alice, outcome="failed")
    printing.print_job_record(job=job, actor=alice, outcome="failed", reason="Spaghetti at layer 12")
    assert (fresh(job).status, job.reason) == (S.FAILED, "Spaghetti at layer 12")
    assert PrintRecord.objects.get(job=job).result == "failed"
    assert not fresh(printer).bed_clear
    assert Notification.objects.filter(recipient=bob, subject="Failed: part.gcode on MK4").exists()


def test_only_the_owner_and_managers_record_and_a_networked_printer_reports_itself(
    lab, alice, bob, tmp_path, tick
):
    carol = UserFactory(username="carol")
    add_member(lab, carol)
    make_printer(lab)
    job = queued_job(lab, bob, tmp_path)
    tick()
    with pytest.raises(NotFound):
        printing.print_job_record(job=job, actor=carol, outcome="started")
    printing.print_job_record(job=job, actor=alice, outcome="started")
    with pytest.raises(Conflict, match="not waiting for an operator"):
        printing.print_job_record(job=job, actor=alice, outcome="started")
    networked = make_printer(lab, slug="octo", url="http://127.0.0.1:9", api_key="k")
    PrintJob.objects.filter(pk=job.pk).update(machine=networked.machine)
    with pytest.raises(ValidationError, match="reports its own progress"):
        printing.print_job_record(job=job, actor=alice, outcome="finished")


@pytest.mark.parametrize("stage", ["queued", "awaiting_operator"])
def test_a_job_cancelled_before_it_printed_leaves_no_trace_on_printer_or_timeline(
    lab, bob, printer, tmp_path, tick, stage
):
    job = queued_job(lab, bob, tmp_path)
    if stage == "awaiting_operator":
        tick()
    printing.print_job_cancel(job=job, actor=bob)
    assert (fresh(job).status, job.reason) == (S.CANCELLED, "Cancelled by bob.")
    assert not PrintRecord.objects.exists()
    assert fresh(printer).bed_clear
    assert not Booking.objects.filter(kind=Booking.Kind.PRINT_JOB, status__in=Booking.ACTIVE).exists()


def test_a_job_cancelled_while_printing_is_recorded_and_leaves_the_bed_to_clear(
    lab, alice, bob, printer, tmp_path, tick
):
    job = queued_job(lab, bob, tmp_path)
    tick()
    printing.print_job_record(job=job, actor=alice, outcome="started")
    with pytest.raises(ValidationError, match="Say why you cancel"):
        printing.print_job_cancel(job=job, actor=alice)
    printing.print_job_cancel(job=job, actor=alice, reason="Wrong colour loaded")
    assert PrintRecord.objects.get(job=job).result == "cancelled"
    assert not fresh(printer).bed_clear
    assert (
        Notification.objects.get(recipient=bob, subject="Cancelled: part.gcode").body == "Wrong colour loaded"
    )
    row = fresh(job).booking
    assert row.status == Booking.Status.APPROVED and row.end <= timezone.now()


def test_a_printed_job_is_collected_not_cancelled_and_strangers_cannot_cancel(
    lab, alice, bob, printer, tmp_path, tick
):
    carol = UserFactory(username="carol")
    add_member(lab, carol)
    job = queued_job(lab, bob, tmp_path)
    with pytest.raises(NotFound):
        printing.print_job_cancel(job=job, actor=carol)
    tick()
    printing.print_job_record(job=job, actor=alice, outcome="started")
    printing.print_job_record(job=job, actor=alice, outcome="finished")
    with pytest.raises(Conflict, match="confirm the part is removed"):
        printing.print_job_cancel(job=job, actor=bob)
    printing.printer_confirm_cleared(machine=printer.machine, actor=carol)  # anyone at the lab may
    with pytest.raises(Conflict, match="already done"):
        printing.print_job_cancel(job=job, actor=bob)
    with pytest.raises(Conflict, match="already marked clear"):
        printing.printer_confirm_cleared(machine=printer.machine, actor=carol)


# -- the sweeper ---------------------------------------------------------------------------


def claimed_but_not_sent(lab, bob, tmp_path) -> PrintJob:
    """A job whose dispatcher committed the claim and then died before sending it. A
    printer without network control is handed its job in the claim itself, so what a dead
    send task leaves (the job still sending, the printer's record untouched) is written here."""
    job = queued_job(lab, bob, tmp_path)
    assert dispatch.dispatch_tick() == [job.pk]
    PrintJob.objects.filter(pk=job.pk).update(status=S.DISPATCHING)
    Printer.objects.filter(pk=fresh(job).machine_id).update(state="idle", job_name="", message="")
    return fresh(job)


def test_a_job_stuck_sending_goes_back_to_the_queue_if_it_never_reached_the_printer(
    lab, bob, printer, tmp_path, settings
):
    job = claimed_but_not_sent(lab, bob, tmp_path)
    assert dispatch.print_queue_sweep()["dispatching"] == 0  # not stale yet
    later = timezone.now() + timedelta(seconds=settings.FABHUB_PRINT_DISPATCH_TIMEOUT_S + 1)
    assert dispatch.print_queue_sweep(now=later)["dispatching"] == 1
    assert (fresh(job).status, job.machine, job.dispatch_token) == (S.QUEUED, None, "")
    assert job.reason == "The worker sending the job stopped before the printer started it."
    assert Booking.objects.get(kind=Booking.Kind.PRINT_JOB).status == Booking.Status.CANCELLED


def test_a_job_stuck_sending_that_reached_the_printer_is_kept_there(lab, bob, printer, tmp_path, settings):
    job = claimed_but_not_sent(lab, bob, tmp_path)
    # The worker handed it over, then died before recording it.
    Printer.objects.filter(pk=printer.pk).update(state="awaiting_operator", job_name=job.remote_name)
    later = timezone.now() + timedelta(seconds=settings.FABHUB_PRINT_DISPATCH_TIMEOUT_S + 1)
    dispatch.print_queue_sweep(now=later)
    assert fresh(job).status == S.AWAITING_OPERATOR and job.machine_id == printer.pk


def test_a_late_send_after_the_sweeper_took_over_changes_nothing(lab, bob, printer, tmp_path, settings):
    job = claimed_but_not_sent(lab, bob, tmp_path)
    token = job.dispatch_token
    later = timezone.now() + timedelta(seconds=settings.FABHUB_PRINT_DISPATCH_TIMEOUT_S + 1)
    dispatch.print_queue_sweep(now=later)
    assert dispatch.print_job_send(job_id=job.pk, token=token) == "stale"
    assert fresh(printer).state != "awaiting_operator"


def test_a_preparation_whose_worker_died_is_queued_again_then_given_up(
    lab, bob, printer, tmp_path, django_capture_on_commit_callbacks
):
    from tests.printing.conftest import write_test_gcode
    from tests.printing.factories import gcode_upload

    # A G-code too large to be read while submitted: it is prepared in the background.
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "p.gcode", moves=7000))
    )
    assert job.status == S.PREPARING
    past = timezone.now() - timedelta(minutes=1)
    PrintJob.objects.filter(pk=job.pk).update(prepare_lease_until=past, prepare_attempts=1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert dispatch.print_queue_sweep()["preparing"] == 1
    assert len(queued) == 1  # prepare_print_job queued again
    PrintJob.objects.filter(pk=job.pk).update(prepare_attempts=3)
    dispatch.print_queue_sweep()
    assert fresh(job).status == S.FAILED
    assert job.reason == "Preparing the job was interrupted 3 times (the worker stopped each time)."


def test_timeline_rows_no_job_holds_are_given_back(lab, bob, printer, tmp_path):
    now = timezone.now()
    running = Booking.objects.create(
        machine=printer.machine,
        kind="print_job",
        start=now - timedelta(minutes=5),
        end=now + timedelta(minutes=30),
        created_by=bob,
    )
    future = Booking.objects.create(
        machine=printer.machine,
        kind="print_job",
        start=now + timedelta(hours=1),
        end=now + timedelta(hours=2),
        created_by=bob,
    )
    assert dispatch.print_queue_sweep()["rows"] == 2
    assert fresh(running).end <= timezone.now() and fresh(future).status == "cancelled"


def test_a_poller_that_died_lets_go_of_its_printer(lab, printer):
    networked = make_printer(lab, slug="octo", url="http://127.0.0.1:9", api_key="k")
    Printer.objects.filter(pk=networked.pk).update(poll_lease_until=timezone.now() + timedelta(seconds=60))
    assert dispatch.printer_poll(machine_id=networked.pk) is None  # another poller holds it
    Printer.objects.filter(pk=networked.pk).update(poll_lease_until=timezone.now() - timedelta(seconds=1))
    assert dispatch.printer_poll(machine_id=networked.pk) == "offline"
    assert fresh(networked).poll_lease_until is None
