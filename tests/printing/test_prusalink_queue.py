"""The print queue on a Prusa printer behind the real PrusaLink (in its own network
namespace, tests/printing/prusalink_server.py): driven directly by the hub with the
`prusalink` protocol through the guarded client."""

from __future__ import annotations

import pytest

from machines.models import PrintJob, PrintRecord
from machines.printing import dispatch
from machines.printing import services as printing
from machines.printing.connections import driver_for_machine
from machines.printing.drivers.prusalink import PrusaLinkDriver
from machines.services import machine_update
from tests.machines.factories import add_member, make_lab
from tests.printing.conftest import wait_for, write_test_gcode
from tests.printing.factories import gcode_upload, make_printer
from tests.printing.prusalink_server import prusalink_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
S = PrintJob.Status


def refreshed(row):
    row.refresh_from_db()
    return row


def test_a_job_prints_on_a_prusalink_printer_driven_by_the_hub(alice, bob, prusalink_server, tmp_path):  # noqa: F811
    prusalink_server.restart_unless_queue_moves()
    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    printer = make_printer(lab, slug="mk3s", profile_name="prusa")
    machine_update(
        machine=printer.machine, actor=alice, connection_url=prusalink_server.url,
        connection_api_key=prusalink_server.api_key, connection_protocol="prusalink",
    )  # fmt: skip
    printer.machine.refresh_from_db()
    assert isinstance(driver_for_machine(printer.machine), PrusaLinkDriver)

    def idle():
        return dispatch.printer_poll(machine_id=printer.pk) == "idle"

    wait_for(idle, timeout=60, what="PrusaLink to be idle")
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "clip.gcode", moves=300))
    )
    if refreshed(job).status == S.QUEUED and "does not answer" in job.reason:
        # PrusaLink's own race (tests/printing/prusalink_server.py) can strike after it
        # reported idle: once in a full run it left the upload unanswered for 30 s. The
        # hub did its part (the job back in the queue, retryable; the driver's timeouts
        # are tested apart); the test server is started again and the next tick sends
        # the job (checked with PrusaLink frozen by SIGSTOP: sent again, and started).
        prusalink_server.restart()
        machine_update(
            machine=printer.machine, actor=alice, connection_url=prusalink_server.url,
            connection_api_key=prusalink_server.api_key,
        )  # fmt: skip
        wait_for(idle, timeout=60, what="PrusaLink to be idle again")
        dispatch.dispatch_tick(lab_id=lab.pk)
    assert refreshed(job).status in (S.PRINTING, S.AWAITING_REMOVAL), job.reason

    def finished():
        dispatch.printer_poll(machine_id=printer.pk)
        status = refreshed(job).status
        assert status not in (S.FAILED, S.CANCELLED), f"the job ended {status}: {job.reason}"
        return status == S.AWAITING_REMOVAL

    # PrusaLink shows a finished job for about 11 s before it forgets it: poll well within that.
    wait_for(finished, timeout=120, what="the job to print on PrusaLink", interval=0.3)
    assert PrintRecord.objects.filter(job=job).count() == 1
