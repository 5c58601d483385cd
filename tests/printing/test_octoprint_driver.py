"""The OctoPrint driver against a real OctoPrint 1.11.8 and its Virtual Printer."""

from __future__ import annotations

import json
import socket
import time

import pytest

from hub.outbound import GuardedSession
from machines.printing.drivers import PrinterError, PrinterState
from machines.printing.drivers.octoprint import OctoPrintDriver, state_from_text
from tests.printing.conftest import wait_for, write_test_gcode

slow = pytest.mark.slow


@pytest.fixture
def short_print(tmp_path):
    return write_test_gcode(tmp_path / "short.gcode", moves=300)  # about 2 s


@pytest.fixture
def long_print(tmp_path):
    return write_test_gcode(tmp_path / "long.gcode", moves=3000)  # about 18 s: always cut short


def _printing(driver, name):
    status = driver.status()
    return status if status.state is PrinterState.PRINTING and status.job_name == name else None


@slow
def test_it_connects_and_reports_an_idle_printer(octoprint_printer):
    octoprint_printer.connect()  # a second connect must not reconnect (and so kill a print)
    status = octoprint_printer.status()
    assert status.state is PrinterState.IDLE
    assert status.message == "Operational"


@slow
def test_it_prints_a_file_to_the_end(octoprint_printer, short_print):
    octoprint_printer.upload_and_start(short_print, "short.gcode")
    first = octoprint_printer.status()
    assert first.state is PrinterState.PRINTING and first.job_name == "short.gcode"
    later = wait_for(
        lambda: (s := octoprint_printer.status()).progress and s.progress > (first.progress or 0) and s,
        timeout=10,
        what="the progress to go up",
    )
    assert 0 < later.progress <= 100
    done = wait_for(
        lambda: (s := octoprint_printer.status()).state is PrinterState.IDLE and s,
        timeout=25,
        what="the print to end",
    )
    # Finished: idle, the file still selected, at 100 %. That is how the queue tells a
    # finished job from a cancelled (progress None) or a forgotten one (no job name).
    assert (done.job_name, done.progress) == ("short.gcode", 100)
    assert done.temperatures["tool0"].actual is not None


@slow
def test_it_cancels_a_running_print(octoprint_printer, long_print):
    octoprint_printer.upload_and_start(long_print, "long.gcode")
    wait_for(lambda: (octoprint_printer.status().progress or 0) > 1, timeout=10, what="some progress")
    octoprint_printer.cancel()
    done = wait_for(
        lambda: (s := octoprint_printer.status()).state is PrinterState.IDLE and s,
        timeout=10,
        what="the cancel",
    )
    assert done.job_name == "long.gcode" and done.progress is None
    octoprint_printer.cancel()  # nothing left to cancel: a retried cancel is not an error


class _FileUnselectedFirst(GuardedSession):
    """What OctoPrint answers for a moment when a print ends in an error: it unselects
    the file before it changes the state, so /api/job says "Printing" with no file. The
    window is too short to hit on purpose, so the first /api/job answer here is the real
    one with its file taken out, as OctoPrint 1.11's printer/standard.py
    on_comm_state_change leaves it (_setJobData(None, ...) before _setState)."""

    def __init__(self) -> None:
        super().__init__()
        self.job_answers = 0

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        if method == "GET" and url.endswith("/api/job"):
            self.job_answers += 1
            if self.job_answers == 1:
                data = response.json()
                data["job"]["file"] = {"name": None, "path": None, "origin": None}
                response._content = json.dumps(data).encode()
        return response


@slow
def test_an_active_state_naming_no_file_is_looked_at_again(octoprint_server, octoprint_printer, long_print):
    """The queue ends a job the printer no longer names as lost: a nameless "Printing"
    is never reported as it is, the driver asks again."""
    octoprint_printer.upload_and_start(long_print, "long.gcode")
    session = _FileUnselectedFirst()
    driver = OctoPrintDriver(octoprint_server.url, octoprint_server.api_key, session=session)
    try:
        status = driver.status()
        assert session.job_answers == 2
        assert (status.state, status.job_name) == (PrinterState.PRINTING, "long.gcode")
    finally:
        octoprint_printer.cancel()


@slow
def test_it_pauses_and_resumes_a_print(octoprint_printer, long_print):
    octoprint_printer.upload_and_start(long_print, "long.gcode")
    octoprint_printer.pause()
    paused = wait_for(
        lambda: (s := octoprint_printer.status()).state is PrinterState.PAUSED and s,
        timeout=10,
        what="the pause",
    )
    time.sleep(0.3)
    assert octoprint_printer.status().progress == paused.progress
    octoprint_printer.pause()  # already paused: nothing happens
    octoprint_printer.resume()
    wait_for(lambda: _printing(octoprint_printer, "long.gcode"), timeout=10, what="the print to resume")
    octoprint_printer.cancel()
    wait_for(lambda: octoprint_printer.status().state is PrinterState.IDLE, timeout=10, what="the cancel")
    with pytest.raises(PrinterError, match="no print job to resume") as raised:
        octoprint_printer.resume()
    assert raised.value.retryable is False


@slow
def test_it_uploads_and_starts_without_asking_the_state_first(
    octoprint_server, octoprint_printer, short_print
):
    asked = []
    session = GuardedSession()
    session.hooks["response"].append(
        lambda response, **kwargs: asked.append(f"{response.request.method} {response.request.path_url}")
    )
    OctoPrintDriver(octoprint_server.url, octoprint_server.api_key, session=session).upload_and_start(
        short_print, "short.gcode"
    )
    # OctoPrint starts the print only on a printer that is ready: the state is asked only
    # after the upload, until the print runs.
    assert asked[0] == "POST /api/files/local"
    assert set(asked[1:]) == {"GET /api/job"}
    assert _printing(octoprint_printer, "short.gcode")


@slow
def test_a_printer_not_connected_refuses_with_nothing_started(
    octoprint_server, octoprint_printer, short_print
):
    session = GuardedSession()
    session.headers["X-Api-Key"] = octoprint_server.api_key
    session.post(f"{octoprint_server.url}/api/connection", json={"command": "disconnect"}).raise_for_status()
    wait_for(
        lambda: octoprint_printer.status().state is PrinterState.OFFLINE, timeout=10, what="the disconnect"
    )
    with pytest.raises(PrinterError, match="is not connected to the printer") as raised:
        octoprint_printer.upload_and_start(short_print, "short.gcode")
    # The queue puts the job back for any printer: nothing started here.
    assert raised.value.nothing_sent is True
    assert raised.value.retryable is True
    octoprint_printer.connect()
    assert octoprint_printer.status().state is PrinterState.IDLE


@slow
def test_it_refuses_to_start_a_second_job_while_busy(octoprint_printer, long_print, short_print):
    octoprint_printer.upload_and_start(long_print, "long.gcode")
    with pytest.raises(PrinterError) as raised:
        octoprint_printer.upload_and_start(short_print, "short.gcode")
    assert raised.value.retryable is False
    assert "busy" in raised.value.message and "'long.gcode'" in raised.value.message
    assert _printing(octoprint_printer, "long.gcode"), "the running job must be left alone"
    # The same call retried (say after a lost reply) is refused the same way.
    with pytest.raises(PrinterError, match="busy"):
        octoprint_printer.upload_and_start(long_print, "long.gcode")


@slow
def test_it_reports_a_killed_octoprint_and_the_job_it_forgot(octoprint_server, octoprint_printer, long_print):
    octoprint_printer.upload_and_start(long_print, "long.gcode")
    wait_for(lambda: (octoprint_printer.status().progress or 0) > 1, timeout=10, what="some progress")
    octoprint_server.kill()

    with pytest.raises(PrinterError) as raised:
        octoprint_printer.status()
    assert raised.value.retryable is True
    assert f"OctoPrint at {octoprint_server.url} does not answer" in raised.value.message

    octoprint_server.start()
    after = octoprint_printer.status()
    assert after.state is PrinterState.OFFLINE and after.job_name is None and after.progress is None
    with pytest.raises(PrinterError, match="not connected") as raised:
        octoprint_printer.upload_and_start(long_print, "long.gcode")
    assert raised.value.retryable is True
    octoprint_printer.connect()
    reconnected = octoprint_printer.status()
    assert reconnected.state is PrinterState.IDLE and reconnected.job_name is None


@slow
def test_a_file_octoprint_rejects_is_not_retryable(octoprint_printer, short_print):
    with pytest.raises(
        PrinterError, match="rejected the request: Could not upload file, invalid type"
    ) as raised:
        octoprint_printer.upload_and_start(short_print, "notes.txt")
    assert raised.value.retryable is False
    assert octoprint_printer.status().state is PrinterState.IDLE


@slow
def test_it_says_when_the_api_key_is_refused(octoprint_server):
    driver = OctoPrintDriver(octoprint_server.url, "not-the-key", session=GuardedSession())
    for call in (driver.status, driver.connect, driver.cancel, driver.pause):
        with pytest.raises(PrinterError, match="the API key was refused") as raised:
            call()
        assert raised.value.retryable is False


def test_a_server_that_accepts_but_never_answers_is_retryable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel completes the handshake; nobody ever reads
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(PrinterError, match="does not answer") as raised:
            OctoPrintDriver(url, "key", timeout=(0.5, 0.5), session=GuardedSession()).status()
    assert raised.value.retryable is True
    assert time.monotonic() - started < 5


def test_a_closed_port_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PrinterError, match=f"OctoPrint at http://127.0.0.1:{port} does not answer") as raised:
        OctoPrintDriver(f"http://127.0.0.1:{port}/", "key", session=GuardedSession()).status()
    assert raised.value.retryable is True


def test_an_upload_to_a_closed_port_says_nothing_was_sent(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = OctoPrintDriver(f"http://127.0.0.1:{port}/", "key", session=GuardedSession())
    with pytest.raises(PrinterError, match="does not answer") as raised:
        driver.upload_and_start(write_test_gcode(tmp_path / "part.gcode", moves=10), "part.gcode")
    # No connection, so no upload: the queue may give the job to another printer.
    assert (raised.value.retryable, raised.value.nothing_sent) == (True, True)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Operational", PrinterState.IDLE),
        ("Starting", PrinterState.PRINTING),
        ("Printing", PrinterState.PRINTING),
        ("Printing from SD", PrinterState.PRINTING),
        ("Finishing", PrinterState.PRINTING),
        ("Resuming", PrinterState.PRINTING),
        ("Pausing", PrinterState.PAUSING),
        ("Paused", PrinterState.PAUSED),
        ("Cancelling", PrinterState.CANCELLING),
        ("Offline", PrinterState.OFFLINE),
        ("Closed", PrinterState.OFFLINE),
        ("Opening serial connection", PrinterState.CONNECTING),
        ("Detecting serial connection", PrinterState.CONNECTING),
        ("Detecting baudrate", PrinterState.CONNECTING),
        ("Connecting", PrinterState.CONNECTING),
        ("Error", PrinterState.ERROR),
        ("Error: Thermal Runaway, system stopped! Heater_ID: 0", PrinterState.ERROR),
        ("Offline after error", PrinterState.ERROR),
        ("Something new", PrinterState.UNKNOWN),
        ("", PrinterState.UNKNOWN),
        (None, PrinterState.UNKNOWN),
    ],
)
def test_it_maps_octoprint_state_texts(text, state):
    assert state_from_text(text) is state


class _StillPausing(GuardedSession):
    """What OctoPrint answers while a printer is still pausing an earlier job: the upload
    with print says effectivePrint (its check is "operational, not printing, not paused")
    and the file is then not selected (select_file declines on a busy printer). The
    Virtual Printer passes through "Pausing" too fast to upload in it on purpose, so the
    real printer is paused and its answers are shown as they are a moment earlier."""

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/api/files/local"):
            data = response.json()
            data["effectivePrint"] = True
            response._content = json.dumps(data).encode()
        if method == "GET" and url.endswith("/api/job"):
            data = response.json()
            data["state"] = "Pausing"
            response._content = json.dumps(data).encode()
        return response


@slow
def test_a_printer_still_pausing_another_job_starts_nothing_and_says_so(
    octoprint_server, octoprint_printer, long_print, short_print
):
    octoprint_printer.upload_and_start(long_print, "long.gcode")
    try:
        octoprint_printer.pause()
        wait_for(lambda: octoprint_printer.status().state is PrinterState.PAUSED, timeout=30, what="paused")
        driver = OctoPrintDriver(octoprint_server.url, octoprint_server.api_key, session=_StillPausing())
        started = time.monotonic()
        with pytest.raises(PrinterError, match="did not start") as raised:
            driver.upload_and_start(short_print, "short.gcode")
        # The job goes back to the queue at once, not failed after the start wait.
        assert (raised.value.retryable, raised.value.nothing_sent) == (False, True)
        assert time.monotonic() - started < driver.start_wait
        assert octoprint_printer.status().job_name == "long.gcode"
    finally:
        octoprint_printer.cancel()
