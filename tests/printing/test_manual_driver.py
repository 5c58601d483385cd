"""The driver for printers without a network connection only reports what people recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from machines.printing.connections import driver_for
from machines.printing.drivers import PrinterError, PrinterState, PrinterStatus
from machines.printing.drivers.manual import ManualDriver
from machines.printing.drivers.octoprint import OctoPrintDriver


def test_it_knows_nothing_until_an_operator_records_something():
    assert ManualDriver().status().state is PrinterState.UNKNOWN


def test_a_started_job_waits_for_an_operator_and_never_claims_to_print():
    driver = ManualDriver(PrinterStatus(state=PrinterState.IDLE))
    driver.upload_and_start(Path("/tmp/part.gcode"), "part.gcode")
    status = driver.status()
    assert status.state is PrinterState.AWAITING_OPERATOR and status.job_name == "part.gcode"
    assert "carry part.gcode to the printer" in status.message
    assert driver.file_to_carry == Path("/tmp/part.gcode")


def test_it_refuses_a_second_job_while_one_is_recorded_as_running():
    driver = ManualDriver(PrinterStatus(state=PrinterState.PRINTING, job_name="other.gcode"))
    with pytest.raises(PrinterError, match="busy") as raised:
        driver.upload_and_start(Path("/tmp/part.gcode"), "part.gcode")
    assert raised.value.retryable is False


def test_cancelling_a_hand_off_withdraws_it_but_a_running_job_must_be_stopped_by_hand():
    driver = ManualDriver(PrinterStatus(state=PrinterState.IDLE))
    driver.upload_and_start(Path("/tmp/part.gcode"), "part.gcode")
    driver.cancel()
    assert driver.status().state is PrinterState.IDLE and driver.file_to_carry is None
    driver.record(PrinterStatus(state=PrinterState.PRINTING, job_name="part.gcode"))
    with pytest.raises(PrinterError, match="stop the job at the printer"):
        driver.cancel()
    with pytest.raises(PrinterError, match="pause the job at the printer"):
        driver.pause()


def test_the_connection_settings_choose_the_driver():
    assert isinstance(driver_for(None), ManualDriver)
    driver = driver_for({"driver": "octoprint", "url": "http://octopi.local/", "api_key": "K"})
    assert isinstance(driver, OctoPrintDriver) and driver.base_url == "http://octopi.local"
    assert "K" not in repr(driver)
    with pytest.raises(PrinterError, match="no driver"):
        driver_for({"driver": "telepathy"})
