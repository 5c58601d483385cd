"""The PrusaLink driver against a real PrusaLink 0.8.1 and a stand-in for an MK3S's
firmware (tests/printing/prusalink_server.py has the set-up)."""

from __future__ import annotations

import socket
from itertools import pairwise

import pytest
import requests

from hub.outbound import GuardedSession
from machines.printing.drivers import Capability, PrinterError, PrinterState
from machines.printing.drivers.prusalink import PrusaLinkDriver, state_from_text
from tests.printing.conftest import wait_for, write_test_gcode
from tests.printing.prusalink_server import prusalink_server  # noqa: F401 (a fixture)

slow = pytest.mark.slow


@pytest.fixture
def prusalink_printer(prusalink_server):  # noqa: F811
    """A driver on a plain session, the printer holding no job, whatever the last test left.

    A test may start a job right after the previous one ended: the driver's own
    `settle_wait` waits out PrusaLink's FINISHED/STOPPED pause, as it does for the hub.
    """
    prusalink_server.restart_unless_queue_moves()
    driver = PrusaLinkDriver(prusalink_server.url, prusalink_server.api_key, session=requests.Session())
    driver.cancel()
    return driver


@pytest.fixture
def short_print(tmp_path):
    return write_test_gcode(tmp_path / "short.gcode", moves=300)  # about 4 s on the stand-in


@pytest.fixture
def long_print(tmp_path):
    return write_test_gcode(tmp_path / "long.gcode", moves=3000)  # about 40 s: always cut short


def _running(driver, name, state=PrinterState.PRINTING):
    status = driver.status()
    return status if status.state is state and status.job_name == name else None


def test_prusalink_states_map_onto_the_queues():
    assert state_from_text("FINISHED") is PrinterState.IDLE
    assert state_from_text("STOPPED") is PrinterState.IDLE
    assert state_from_text("READY") is PrinterState.IDLE
    assert state_from_text("ATTENTION") is PrinterState.AWAITING_OPERATOR
    assert state_from_text("BUSY") is PrinterState.UNKNOWN
    assert state_from_text("something new") is PrinterState.UNKNOWN
    assert PrusaLinkDriver.capabilities == frozenset(Capability)


def test_its_repr_never_shows_the_key():
    driver = PrusaLinkDriver("http://127.0.0.1:1", "s3cret-key", session=requests.Session())
    assert "s3cret" not in repr(driver)


@slow
def test_it_reports_an_idle_printer_through_the_hubs_guarded_session(prusalink_server):  # noqa: F811
    driver = PrusaLinkDriver(prusalink_server.url, prusalink_server.api_key, session=GuardedSession())
    driver.connect()  # PrusaLink keeps its own serial connection: nothing to do
    status = driver.status()
    assert (status.state, status.job_name, status.progress) == (PrinterState.IDLE, None, None)
    assert status.message == "IDLE"
    assert status.temperatures["tool0"].actual is not None and status.temperatures["bed"].target is not None


@slow
def test_it_prints_a_file_to_the_end(prusalink_printer, short_print):
    prusalink_printer.upload_and_start(short_print, "fabhub-1-short.gcode")
    first = prusalink_printer.status()
    assert first.state is PrinterState.PRINTING and first.job_name == "fabhub-1-short.gcode"
    printing = []

    def ended():
        status = prusalink_printer.status()
        if status.state is PrinterState.PRINTING:
            printing.append(status)
        return status.state is PrinterState.IDLE and status

    # About 4 s here; a loaded machine slows PrusaLink's line-by-line streaming.
    done = wait_for(ended, timeout=60, what="the print to end")
    # PrusaLink says FINISHED: idle, the job still named, at 100 %.
    assert (done.job_name, done.progress, done.message) == ("fabhub-1-short.gcode", 100, "FINISHED")
    # The progress climbs while it prints (0, 33, 66, then 98 and 100 near the end). Not
    # from the first look: until the file's first progress report, PrusaLink 0.8.1 still
    # shows the last job's final figure (docs/printing.md, "PrusaLink states").
    climbing = [s.progress for s in printing if s.progress is not None and 0 < s.progress < 100]
    assert any(b > a for a, b in pairwise(climbing)), [s.progress for s in printing]
    assert all(s.job_name == "fabhub-1-short.gcode" for s in printing)
    assert printing[-1].temperatures["tool0"].actual is not None


@slow
def test_it_pauses_and_resumes_a_print(prusalink_printer, long_print):
    prusalink_printer.upload_and_start(long_print, "long.gcode")
    prusalink_printer.pause()  # returns once PrusaLink says PAUSED
    assert _running(prusalink_printer, "long.gcode", PrinterState.PAUSED)
    prusalink_printer.pause()  # already paused: nothing to do
    prusalink_printer.resume()
    assert _running(prusalink_printer, "long.gcode")
    prusalink_printer.resume()  # already printing: nothing to do


@slow
def test_a_busy_printer_refuses_another_job_naming_its_own_and_changes_nothing(
    prusalink_printer,
    long_print,
    short_print,
):
    prusalink_printer.upload_and_start(long_print, "long.gcode")
    with pytest.raises(PrinterError) as refused:
        prusalink_printer.upload_and_start(short_print, "other.gcode")
    assert not refused.value.retryable
    assert "'long.gcode'" in refused.value.message
    assert _running(prusalink_printer, "long.gcode")


@slow
def test_a_cancel_leaves_the_job_named_and_a_new_start_waits_for_prusalink_to_settle(
    prusalink_server,  # noqa: F811
    prusalink_printer,
    long_print,
    short_print,
):
    prusalink_printer.upload_and_start(long_print, "long.gcode")
    # Not the first figure: PrusaLink shows the last job's until this one reports its own.
    inherited = prusalink_printer.status().progress
    wait_for(
        lambda: (p := prusalink_printer.status().progress or 0) > 1 and p != inherited,
        timeout=30,
        what="some progress",
    )
    prusalink_printer.cancel()  # returns once the job has stopped
    stopped = prusalink_printer.status()
    # STOPPED: idle, the job named, not at 100 % (PrusaLink no longer says where it was).
    assert (stopped.state, stopped.job_name, stopped.message) == (PrinterState.IDLE, "long.gcode", "STOPPED")
    assert stopped.progress != 100
    prusalink_printer.cancel()  # nothing left to cancel: a retried cancel is not an error

    # PrusaLink refuses a new print with 409 for about 11 s after a stop: the driver
    # waits `settle_wait` for it, then gives up with an error worth retrying.
    impatient = PrusaLinkDriver(
        prusalink_printer.base_url, prusalink_server.api_key, session=requests.Session(), settle_wait=1
    )
    with pytest.raises(PrinterError) as early:
        impatient.upload_and_start(short_print, "short.gcode")
    assert early.value.retryable and "not cleared" in early.value.message
    prusalink_printer.upload_and_start(short_print, "short.gcode")
    assert _running(prusalink_printer, "short.gcode")


@slow
@pytest.mark.parametrize("key", ["", "not-the-key"])
def test_a_missing_or_wrong_key_is_not_retryable(prusalink_server, key):  # noqa: F811
    driver = PrusaLinkDriver(prusalink_server.url, key, session=requests.Session())
    with pytest.raises(PrinterError) as refused:
        driver.status()
    assert not refused.value.retryable
    assert "refused the API key" in refused.value.message
    assert "not-the-key" not in refused.value.message


@slow
def test_it_signs_in_with_http_digest(prusalink_server):  # noqa: F811
    driver = PrusaLinkDriver(
        prusalink_server.url,
        prusalink_server.password,
        username=prusalink_server.username,
        session=requests.Session(),
    )
    assert driver.status().temperatures["bed"].actual is not None
    wrong = PrusaLinkDriver(
        prusalink_server.url, "wrong password", username=prusalink_server.username, session=requests.Session()
    )
    with pytest.raises(PrinterError) as refused:
        wrong.status()
    assert not refused.value.retryable and "user name and password" in refused.value.message


def test_a_printer_that_does_not_answer_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the driver connects: refused
    driver = PrusaLinkDriver(f"http://127.0.0.1:{port}", "key", session=requests.Session())
    for call in (driver.status, driver.connect):
        with pytest.raises(PrinterError) as unreachable:
            call()
        assert unreachable.value.retryable
