"""The whole queue against a real OctoPrint 1.11.8 and its Virtual Printer: a mesh pinned at
a commit is sliced by PrusaSlicer, dispatched, printed, collected and recorded; and the
faults: OctoPrint killed mid-print and restarted, an upload refused, a cancel and a
pause from the hub, two dispatchers racing for one job, a worker dying mid-send."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.utils import timezone

from designs import services as design_services
from hub.models import Notification
from hub.outbound import GuardedSession
from machines.models import Printer, PrintJob, PrintRecord
from machines.printing import dispatch
from machines.printing import services as printing
from machines.printing.drivers import PrinterState
from machines.printing.files import gcode_path
from tests.factories import commit_files
from tests.printing.conftest import make_octoprint_server, wait_for, write_test_gcode
from tests.printing.factories import FAST_PROFILE, analysed_design, box_stl, gcode_upload, make_printer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
S = PrintJob.Status


def octoprint_printer_of(lab, server, slug="octo") -> Printer:
    printer = make_printer(
        lab,
        slug=slug,
        url=server.url,
        api_key=server.api_key,
        serial_port="VIRTUAL",
        baudrate=115200,
        slicer_profile=FAST_PROFILE,
        profile_name="virtual, no heating",
    )
    assert dispatch.printer_poll(machine_id=printer.pk) in ("idle", "offline")
    assert dispatch.printer_poll(machine_id=printer.pk) == "idle"  # the first poll connected it
    return printer


@pytest.fixture
def printer(lab, octoprint_printer, octoprint_server):
    """The lab's OctoPrint printer, connected and seen idle (octoprint_printer makes sure
    the server runs and the virtual printer is idle)."""
    return octoprint_printer_of(lab, octoprint_server)


def refreshed(row):
    row.refresh_from_db()
    return row


def poll_until(printer: Printer, job: PrintJob, statuses, *, timeout: float) -> PrintJob:
    def check():
        dispatch.printer_poll(machine_id=printer.pk)
        return refreshed(job).status in statuses and job

    return wait_for(
        check, timeout=timeout, what=f"job {job.pk} to become {' or '.join(statuses)}", interval=0.2
    )


def long_gcode_job(lab, owner, tmp_path, name="long.gcode") -> PrintJob:
    """An uploaded G-code that prints for about 18 s on the virtual printer: always cut short."""
    path = write_test_gcode(tmp_path / name, moves=3000)
    return printing.print_job_submit(lab=lab, owner=owner, upload=gcode_upload(path))


def octoprint_files(server) -> list[str]:
    r = requests.get(f"{server.url}/api/files/local", headers={"X-Api-Key": server.api_key}, timeout=10)
    return [f["name"] for f in r.json()["files"]]


def test_a_mesh_at_a_pinned_commit_is_sliced_printed_collected_and_recorded(
    lab, alice, bob, printer, octoprint_server
):
    design, sha = analysed_design(bob, {"parts/cube.stl": box_stl(12, 12, 4)})
    design_services.tag_create(design=design, user=bob, name="v1", target=sha, notes="First release")
    commit_files(design, {"parts/cube.stl": box_stl(20, 20, 4)}, "Make it bigger")  # main moves on; v1 stays

    started = time.monotonic()
    # Submitting commits, so preparing (slicing) and dispatching run at once, as the
    # embedded worker would run them.
    job = printing.print_job_submit(lab=lab, owner=bob, design=design, path="parts/cube.stl", rev="v1")
    job = poll_until(printer, job, (S.PRINTING, S.AWAITING_REMOVAL), timeout=30)
    to_printing = time.monotonic() - started
    assert job.commit_sha == sha and job.rev == "v1"
    job = poll_until(printer, job, (S.AWAITING_REMOVAL,), timeout=30)
    print(
        f"\nsubmit → printing {to_printing:.1f} s; printed in {time.monotonic() - started - to_printing:.1f} s"
    )

    assert refreshed(printer).bed_clear is False
    assert Notification.objects.filter(
        recipient=bob, subject=f"Printed: cube.stl is ready on {printer.machine.name}"
    ).exists()
    # The printer printed exactly the G-code the hub recorded.
    gcode = job.gcode
    printed = requests.get(
        f"{octoprint_server.url}/downloads/files/local/{job.remote_name}",
        headers={"X-Api-Key": octoprint_server.api_key},
        timeout=10,
    ).content
    assert hashlib.sha256(printed).hexdigest() == gcode.sha256
    assert gcode.slicer.startswith("PrusaSlicer") and gcode.estimated_seconds > 0

    printing.printer_confirm_cleared(machine=printer.machine, actor=alice)
    assert refreshed(job).status == S.DONE and job.copies_done == 1
    record = PrintRecord.objects.get(job=job)
    assert (record.result, record.design, record.commit_sha, record.path) == (
        "done",
        design,
        sha,
        "parts/cube.stl",
    )
    assert record.blob_sha == design.repo.entry(sha, "parts/cube.stl").sha
    assert (record.gcode_sha, record.slicer, record.profile_name) == (
        gcode.sha256,
        gcode.slicer,
        "virtual, no heating",
    )
    assert (record.machine, record.owner_name, record.removed_by) == (printer.machine, "bob", alice)
    assert record.started_at < record.ended_at < record.removed_at
    assert refreshed(job.booking).end <= record.ended_at + timedelta(seconds=1)


def test_octoprint_killed_mid_print_fails_the_job_as_interrupted_and_resumes_nothing(
    lab, alice, bob, printer, octoprint_server, octoprint_printer, tmp_path
):
    job = long_gcode_job(lab, bob, tmp_path)
    job = poll_until(printer, job, (S.PRINTING,), timeout=15)
    wait_for(
        lambda: (dispatch.printer_poll(machine_id=printer.pk), refreshed(job).progress or 0)[1] > 1,
        timeout=10,
        what="some progress",
    )
    at = refreshed(job).progress
    octoprint_server.kill()

    assert dispatch.printer_poll(machine_id=printer.pk) == "offline"
    job = refreshed(job)
    assert job.status == S.PRINTER_LOST and "stopped answering" in job.reason
    assert refreshed(printer).state == "offline" and "does not answer" in printer.message
    assert Notification.objects.filter(
        recipient=alice, subject=f"Printer lost: {printer.machine.name}"
    ).exists()
    waiting = long_gcode_job(lab, bob, tmp_path, name="next.gcode")
    assert refreshed(waiting).status == S.QUEUED  # the lost job still holds the printer

    octoprint_server.start()
    dispatch.printer_poll(machine_id=printer.pk)
    job = refreshed(job)
    assert job.status == S.FAILED
    assert job.reason.startswith(f"Interrupted: {printer.machine.name} lost the print at {at:.0f} %")
    assert "nothing was resumed" in job.reason
    record = PrintRecord.objects.get(job=job)
    assert record.result == PrintRecord.Result.INTERRUPTED
    # The poll reconnected the printer, which prints nothing: OctoPrint forgot the job.
    status = octoprint_printer.status()
    assert status.state is PrinterState.IDLE and status.job_name is None
    assert refreshed(printer).state == "idle" and not printer.bed_clear
    assert dispatch.dispatch_tick() == []  # and nothing starts on the old part's remains
    printing.printer_confirm_cleared(machine=printer.machine, actor=alice)
    poll_until(printer, waiting, (S.PRINTING,), timeout=15)
    printing.print_job_cancel(job=waiting, actor=bob)


@pytest.fixture(scope="module")
def refusing_server(tmp_path_factory):
    """A second OctoPrint whose uploads are limited to 2 kB: it refuses any real job."""
    server = make_octoprint_server(tmp_path_factory.mktemp("octoprint-small"))
    python = Path(server.executable).with_name("python")
    subprocess.run(
        [
            str(python),
            "-c",
            "import sys, yaml; p = sys.argv[1]; c = yaml.safe_load(open(p)); "
            "c['server']['uploads'] = {'maxSize': 2048}; yaml.safe_dump(c, open(p, 'w'))",
            str(server.basedir / "config.yaml"),
        ],
        check=True,
        timeout=60,
    )
    server.start()
    yield server
    server.kill()


def test_an_upload_the_printer_refuses_fails_the_job_with_its_message(lab, bob, refusing_server, tmp_path):
    printer = octoprint_printer_of(lab, refusing_server, slug="small")
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "part.gcode", moves=300))
    )
    job = refreshed(job)
    assert job.status == S.FAILED
    # OctoPrint's words (a 400 for an upload over its limit, or a reset connection if the
    # body was still on its way), after ours.
    assert job.reason.startswith(f"The printer refused the job: OctoPrint at {refusing_server.url} ")
    assert "rejected the request" in job.reason or "could not send" in job.reason
    assert not PrintRecord.objects.filter(job=job).exists()  # nothing printed
    assert refreshed(printer).bed_clear and dispatch.printer_poll(machine_id=printer.pk) == "idle"


def test_pause_resume_and_cancel_from_the_hub_reach_the_printer(
    lab, bob, printer, octoprint_printer, tmp_path
):
    job = long_gcode_job(lab, bob, tmp_path)
    job = poll_until(printer, job, (S.PRINTING,), timeout=15)
    printing.print_job_pause(job=job, actor=bob)
    wait_for(lambda: octoprint_printer.status().state is PrinterState.PAUSED, timeout=10, what="the pause")
    assert poll_until(printer, job, (S.PAUSED,), timeout=5).status == S.PAUSED
    printing.print_job_pause(job=job, actor=bob, resume=True)
    poll_until(printer, job, (S.PRINTING,), timeout=10)

    printing.print_job_cancel(job=job, actor=bob)  # the printer is told after the commit
    stopped = wait_for(
        lambda: (s := octoprint_printer.status()).state is PrinterState.IDLE and s,
        timeout=10,
        what="OctoPrint to cancel",
    )
    assert stopped.job_name == job.remote_name and stopped.progress is None
    assert refreshed(job).status == S.CANCELLED
    assert PrintRecord.objects.get(job=job).result == "cancelled"
    dispatch.printer_poll(machine_id=printer.pk)
    assert refreshed(job).status == S.CANCELLED and not refreshed(printer).bed_clear


def test_two_dispatchers_racing_for_one_job_send_it_to_the_printer_once(
    lab, bob, printer, octoprint_server, octoprint_printer, tmp_path
):
    second = octoprint_printer_of(lab, octoprint_server, slug="octo-2")  # the same OctoPrint: both idle
    Printer.objects.update(bed_clear=False)  # hold the job back while it is queued
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "race.gcode", moves=300))
    )
    assert refreshed(job).status == S.QUEUED
    Printer.objects.update(bed_clear=True)
    barrier = threading.Barrier(2)
    claimed: list[int] = []

    def dispatcher(lab_printer):
        try:
            barrier.wait()
            claimed.extend(dispatch.dispatch_tick())
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher, args=(p,)) for p in (printer, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert claimed == [job.pk]
    uploads = [name for name in octoprint_files(octoprint_server) if name.startswith(f"fabhub-{job.pk}-")]
    assert uploads == [refreshed(job).remote_name]
    poll_until(refreshed(job).machine.printer, job, (S.AWAITING_REMOVAL,), timeout=20)


def test_a_worker_dying_after_starting_the_print_is_taken_over_by_the_sweeper(
    lab, bob, printer, octoprint_printer, octoprint_server, tmp_path, settings, monkeypatch
):
    Printer.objects.update(bed_clear=False)
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "orphan.gcode", moves=300))
    )
    Printer.objects.update(bed_clear=True)
    sends = []
    # The worker that takes the send dies with it: the task never reports back.
    monkeypatch.setattr(dispatch, "enqueue", lambda name, *args: sends.append((name, args)))
    assert dispatch.dispatch_tick() == [job.pk]
    assert sends == [("machines.tasks.send_print_job", (job.pk, refreshed(job).dispatch_token))]
    # What the dead worker got done: the printer has the job and runs it.
    octoprint_printer.upload_and_start(gcode_path(job.gcode.sha256), job.remote_name)
    assert refreshed(job).status == S.DISPATCHING
    dispatch.printer_poll(machine_id=printer.pk)
    assert refreshed(job).status == S.DISPATCHING  # the poller leaves sends to their worker

    later = timezone.now() + timedelta(seconds=settings.FABHUB_PRINT_DISPATCH_TIMEOUT_S + 1)
    assert dispatch.print_queue_sweep(now=later)["dispatching"] == 1
    assert refreshed(job).status in (S.PRINTING, S.AWAITING_REMOVAL)
    poll_until(printer, job, (S.AWAITING_REMOVAL,), timeout=20)
    uploads = [name for name in octoprint_files(octoprint_server) if name.startswith(f"fabhub-{job.pk}-")]
    assert uploads == [job.remote_name]  # taken over, never sent twice


def test_printers_that_never_answer_do_not_hold_up_the_others(lab, printer, octoprint_server):
    """Two print servers that accept connections and never answer, next to the real one:
    the poll of all three takes one read time-out, not three, and the real one is seen."""
    import socket

    from machines.printing.drivers.octoprint import OctoPrintDriver

    listeners = []
    for n in range(2):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel completes the handshake; nobody ever reads
        listeners.append(listener)
        make_printer(
            lab, slug=f"silent-{n}", url=f"http://127.0.0.1:{listener.getsockname()[1]}", api_key="k"
        )
    Printer.objects.filter(pk=printer.pk).update(state="unknown", seen_at=None)
    read_timeout = OctoPrintDriver("http://x", "k", session=GuardedSession()).timeout[1]
    try:
        started = time.monotonic()
        assert dispatch.printers_poll(lab_id=lab.pk) == 3
        elapsed = time.monotonic() - started
    finally:
        for listener in listeners:
            listener.close()
    assert read_timeout <= elapsed < 2 * read_timeout
    assert refreshed(printer).state == "idle" and printer.seen_at is not None, printer.message
    silent = Printer.objects.filter(machine__slug__startswith="silent-")
    assert {(p.state, "does not answer" in p.message) for p in silent} == {("offline", True)}


def test_a_printer_error_fails_the_job_with_octoprints_words_until_a_person_clears_it(
    lab, alice, bob, printer, octoprint_printer, tmp_path
):
    path = write_test_gcode(tmp_path / "halt.gcode", moves=200)
    path.write_text(path.read_text() + "M112\n" + "G1 X10 Y10\n" * 200)  # an emergency stop mid-file
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))
    job = poll_until(printer, job, (S.FAILED,), timeout=20)
    assert job.reason == (
        f"{printer.machine.name} reported an error: "
        "Offline after error: Closing serial port due to emergency stop M112."
    )
    assert PrintRecord.objects.get(job=job).result == "failed"
    dispatch.printer_poll(machine_id=printer.pk)
    assert refreshed(printer).state == "error" and not printer.bed_clear  # nobody reconnects it yet
    printing.printer_confirm_cleared(machine=printer.machine, actor=alice)
    assert dispatch.printer_poll(machine_id=printer.pk) == "error"  # this poll reconnected it
    assert octoprint_printer.status().state is PrinterState.IDLE
    assert dispatch.printer_poll(machine_id=printer.pk) == "idle"


def test_a_printer_seen_idle_that_fell_into_an_error_sends_the_job_back_to_the_queue(
    lab, bob, printer, octoprint_printer, octoprint_server, tmp_path
):
    """The send skips connecting to a printer its poller saw idle moments ago. If the
    printer fell into an error since, the upload refuses before sending anything: the job
    goes back to the queue for any printer (as when connecting fails), not failed for good."""
    r = requests.post(f"{octoprint_server.url}/api/printer/command", json={"commands": ["M112"]},
                      headers={"X-Api-Key": octoprint_server.api_key}, timeout=10)  # fmt: skip
    assert r.status_code == 204, r.text
    wait_for(lambda: octoprint_printer.status().state is PrinterState.ERROR, timeout=10, what="the error")
    assert refreshed(printer).state == "idle"  # as the poller saw it a moment ago

    path = write_test_gcode(tmp_path / "part.gcode", moves=20)
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))
    job = refreshed(job)  # the submit's tasks ran on its commit: prepared, dispatched, sent
    assert (job.status, job.machine_id) == (S.QUEUED, None)
    assert "could not take it" in job.reason, job.reason
    assert refreshed(printer).state == "error"
    assert not PrintRecord.objects.filter(job=job).exists()
    octoprint_printer.connect()
