"""The Moonraker driver against a real Moonraker 0.11.0, with a stand-in for Klippy behind it.

Moonraker is the real server (scripts/ensure-moonraker); Klippy, the Klipper process
behind it, is `klippy_standin.py`, which "prints" 50 kB of G-code a second.
"""

from __future__ import annotations

import pytest
import requests

from hub.outbound import GuardedSession
from machines.printing.drivers import Capability, PrinterError, PrinterState, Temperature
from machines.printing.drivers.moonraker import MoonrakerDriver, status_from_objects
from tests.printing import moonraker_server as servers
from tests.printing.moonraker_server import free_port, wait_for, write_gcode

# The servers' fixtures, made visible to pytest in this module (they live outside conftest).
moonraker_server = servers.moonraker_server
moonraker_locked_server = servers.moonraker_locked_server
moonraker_printer = servers.moonraker_printer

slow = pytest.mark.slow


@pytest.fixture
def short_print(tmp_path):
    return write_gcode(tmp_path / "short.gcode", size=60_000)  # about 1.2 s


@pytest.fixture
def long_print(tmp_path):
    return write_gcode(tmp_path / "long.gcode", size=2_000_000)  # about 40 s: always cut short


def _is(driver, state, name=None):
    status = driver.status()
    return status if status.state is state and (name is None or status.job_name == name) else None


def _remote_file_exists(server, name: str) -> bool:
    response = requests.get(f"{server.url}/server/files/metadata", params={"filename": name}, timeout=5)
    return response.status_code == 200


@slow
def test_it_reports_an_idle_printer_with_its_temperatures(moonraker_printer):
    moonraker_printer.connect()  # ready already: nothing is sent, nothing restarts
    status = moonraker_printer.status()
    assert status.state is PrinterState.IDLE
    assert status.temperatures["tool0"].actual is not None
    assert status.temperatures["bed"].target is not None
    assert MoonrakerDriver.capabilities == frozenset(Capability)


@slow
def test_it_prints_a_file_to_the_end(moonraker_printer, short_print):
    moonraker_printer.upload_and_start(short_print, "short.gcode")
    first = moonraker_printer.status()
    assert first.state is PrinterState.PRINTING and first.job_name == "short.gcode"
    later = wait_for(
        lambda: (s := moonraker_printer.status()).progress and s.progress > (first.progress or 0) and s,
        timeout=10,
        what="the progress to go up",
    )
    assert 0 < later.progress <= 100
    # The stand-in heats towards the file's M104 S210 and M140 S60.
    assert later.temperatures["tool0"].target == 210 and later.temperatures["bed"].target == 60
    assert later.temperatures["tool0"].actual > 25
    done = wait_for(lambda: _is(moonraker_printer, PrinterState.IDLE), timeout=15, what="the print to end")
    # Finished: idle, the file still named, at 100 %.
    assert (done.job_name, done.progress, done.message) == ("short.gcode", 100, "complete")


@slow
def test_a_file_that_ends_before_the_first_look_counts_as_started(moonraker_printer, tmp_path):
    tiny = write_gcode(tmp_path / "tiny.gcode", size=300)
    moonraker_printer.upload_and_start(tiny, "tiny.gcode")  # does not time out
    done = wait_for(lambda: _is(moonraker_printer, PrinterState.IDLE), timeout=5, what="the print to end")
    assert (done.job_name, done.progress) == ("tiny.gcode", 100)


@slow
def test_it_pauses_and_resumes_a_print(moonraker_printer, long_print):
    moonraker_printer.upload_and_start(long_print, "long.gcode")
    moonraker_printer.pause()
    paused = wait_for(lambda: _is(moonraker_printer, PrinterState.PAUSED), timeout=5, what="the pause")
    moonraker_printer.pause()  # paused already: a retried pause is not an error
    assert moonraker_printer.status().progress == paused.progress  # it stands still
    moonraker_printer.resume()
    wait_for(
        lambda: (
            (s := _is(moonraker_printer, PrinterState.PRINTING, "long.gcode"))
            and s.progress > paused.progress
        ),
        timeout=5,
        what="the print to go on",
    )
    moonraker_printer.resume()  # printing already: a retried resume is not an error
    assert moonraker_printer.status().state is PrinterState.PRINTING


@slow
def test_a_cancelled_print_reads_idle_with_its_name_below_100(moonraker_printer, long_print):
    moonraker_printer.upload_and_start(long_print, "long.gcode")
    wait_for(lambda: (moonraker_printer.status().progress or 0) > 1, timeout=10, what="some progress")
    moonraker_printer.cancel()
    done = wait_for(lambda: _is(moonraker_printer, PrinterState.IDLE), timeout=5, what="the cancel")
    # "Ours, idle, not 100 %" is how the queue reads a print stopped at the printer.
    assert done.job_name == "long.gcode" and 0 < done.progress < 100
    assert done.message == "cancelled"
    moonraker_printer.cancel()  # nothing left to cancel: a retried cancel is not an error


@slow
def test_it_refuses_a_second_job_while_busy_and_changes_nothing(
    moonraker_printer, moonraker_server, long_print, tmp_path
):
    moonraker_printer.upload_and_start(long_print, "long.gcode")
    other = write_gcode(tmp_path / "other.gcode", size=1_000)
    with pytest.raises(PrinterError) as caught:
        moonraker_printer.upload_and_start(other, "other.gcode")
    assert not caught.value.retryable
    assert "'long.gcode'" in caught.value.message
    status = moonraker_printer.status()
    assert (status.state, status.job_name) == (PrinterState.PRINTING, "long.gcode")
    assert not _remote_file_exists(moonraker_server, "other.gcode")  # not even uploaded


@slow
def test_a_retried_upload_and_start_finds_its_own_job_running(moonraker_printer, long_print):
    moonraker_printer.upload_and_start(long_print, "long.gcode")
    # The reply to the first call was lost; the queue tries again.
    with pytest.raises(PrinterError) as caught:
        moonraker_printer.upload_and_start(long_print, "long.gcode")
    assert not caught.value.retryable
    # The contract: compare job_name with remote_name to know the job is ours.
    assert moonraker_printer.status().job_name == "long.gcode"


@slow
def test_pausing_or_resuming_nothing_is_an_error_and_cancelling_nothing_is_not(moonraker_printer):
    moonraker_printer.cancel()
    for command in (moonraker_printer.pause, moonraker_printer.resume):
        with pytest.raises(PrinterError) as caught:
            command()
        assert not caught.value.retryable and "no" in caught.value.message


@slow
def test_a_stopped_klippy_reads_offline_and_connect_waits_for_its_return(
    moonraker_printer, moonraker_server, short_print
):
    moonraker_server.klippy.stop()
    offline = wait_for(
        lambda: _is(moonraker_printer, PrinterState.OFFLINE), timeout=5, what="Moonraker to notice"
    )
    assert offline.job_name is None and offline.temperatures == {}

    impatient = MoonrakerDriver(moonraker_server.url, None, session=requests.Session(), connect_wait=0.5)
    with pytest.raises(PrinterError) as caught:
        impatient.connect()
    assert caught.value.retryable and "not ready within" in caught.value.message
    with pytest.raises(PrinterError) as caught:
        moonraker_printer.upload_and_start(short_print, "short.gcode")
    assert caught.value.retryable and "connect it first" in caught.value.message

    moonraker_server.klippy.start()
    moonraker_printer.connect()  # Moonraker reconnects by itself; connect() waits for it
    assert moonraker_printer.status().state is PrinterState.IDLE


@slow
def test_connect_restarts_klipper_after_an_emergency_stop(moonraker_printer, moonraker_server):
    requests.post(f"{moonraker_server.url}/printer/emergency_stop", timeout=5).raise_for_status()
    stopped = wait_for(lambda: _is(moonraker_printer, PrinterState.ERROR), timeout=5, what="the shutdown")
    assert "Shutdown" in stopped.message
    moonraker_printer.connect()  # asks for FIRMWARE_RESTART and waits for "ready"
    assert moonraker_printer.status().state is PrinterState.IDLE


@slow
def test_the_hubs_guarded_session_drives_moonraker(moonraker_printer, moonraker_server, short_print):
    """The hub's own client (tests allow loopback, as a lab operator allows the lab's LAN)."""
    driver = MoonrakerDriver(moonraker_server.url, None, session=GuardedSession())
    assert driver.status().state is PrinterState.IDLE
    driver.upload_and_start(short_print, "guarded.gcode")
    assert driver.status().job_name == "guarded.gcode"
    driver.cancel()
    wait_for(lambda: _is(driver, PrinterState.IDLE), timeout=5, what="the cancel")


@slow
def test_without_trust_only_the_right_api_key_is_accepted(moonraker_locked_server):
    url = moonraker_locked_server.url
    right = MoonrakerDriver(url, moonraker_locked_server.api_key, session=requests.Session())
    # The right key gets in; there is no Klippy behind this server, which reads as offline.
    assert right.status().state is PrinterState.OFFLINE

    wrong = MoonrakerDriver(url, "0" * 32, session=requests.Session())
    with pytest.raises(PrinterError) as caught:
        wrong.status()
    assert not caught.value.retryable
    assert caught.value.message.startswith(f"Moonraker at {url} refused the API key")
    assert "0" * 32 not in caught.value.message and "0" * 32 not in repr(wrong)

    keyless = MoonrakerDriver(url, None, session=requests.Session())
    with pytest.raises(PrinterError) as caught:
        keyless.status()
    assert not caught.value.retryable and "wants an API key" in caught.value.message


@slow
def test_an_address_that_is_not_moonraker_is_not_retried(moonraker_server):
    driver = MoonrakerDriver(f"{moonraker_server.url}/not-here", None, session=requests.Session())
    with pytest.raises(PrinterError) as caught:
        driver.status()
    assert not caught.value.retryable and "HTTP 404" in caught.value.message


def test_a_refused_connection_is_retryable():
    driver = MoonrakerDriver(f"http://127.0.0.1:{free_port()}", "key", session=requests.Session())
    with pytest.raises(PrinterError) as caught:
        driver.status()
    assert caught.value.retryable and "does not answer" in caught.value.message


def _objects(klippy="ready", job="standby", filename="", progress=0.0, message=""):
    return {
        "webhooks": {"state": klippy, "state_message": f"Klippy says {klippy}"},
        "print_stats": {"state": job, "filename": filename, "message": message},
        "virtual_sdcard": {"progress": progress},
        "extruder": {"temperature": 200.5, "target": 210},
        "heater_bed": {"temperature": 59.0, "target": 60},
    }


@pytest.mark.parametrize(
    ("objects", "state", "progress", "job_name"),
    [
        (_objects(), PrinterState.IDLE, None, None),
        (_objects(job="printing", filename="a.gcode", progress=0.25), PrinterState.PRINTING, 25.0, "a.gcode"),
        (_objects(job="paused", filename="a.gcode", progress=0.5), PrinterState.PAUSED, 50.0, "a.gcode"),
        (_objects(job="complete", filename="a.gcode", progress=0.0), PrinterState.IDLE, 100.0, "a.gcode"),
        (_objects(job="cancelled", filename="a.gcode", progress=0.4), PrinterState.IDLE, 40.0, "a.gcode"),
        (_objects(job="cancelled", filename="a.gcode", progress=1.0), PrinterState.IDLE, 99.9, "a.gcode"),
        (_objects(job="error", filename="a.gcode", progress=0.3), PrinterState.ERROR, 30.0, "a.gcode"),
        (_objects(klippy="startup"), PrinterState.CONNECTING, None, None),
        (_objects(klippy="shutdown", job="error", filename="a.gcode"), PrinterState.ERROR, 0.0, "a.gcode"),
        (_objects(klippy="error"), PrinterState.ERROR, None, None),
    ],
)
def test_it_maps_klipper_states(objects, state, progress, job_name):
    _, status = status_from_objects(objects)
    assert (status.state, status.progress, status.job_name) == (state, progress, job_name)
    assert status.temperatures == {"tool0": Temperature(200.5, 210.0), "bed": Temperature(59.0, 60.0)}


def test_a_print_error_carries_klippers_words():
    _, status = status_from_objects(_objects(job="error", filename="a.gcode", message="Move out of range"))
    assert status.message == "error: Move out of range"
