"""Driver for printers without a network connection.

The hub cannot see or command such a printer: a lab operator carries the file to it,
starts the job and records what happens. This driver only keeps that record honest. It
never claims a job is printing because the hub asked for it: after `upload_and_start`
the state is AWAITING_OPERATOR until a person records otherwise with `record()`.
Persisting the record is the caller's business (the machine row), not the driver's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from machines.printing.drivers.base import PrinterDriver, PrinterError, PrinterState, PrinterStatus


class ManualDriver(PrinterDriver):
    def __init__(self, recorded: PrinterStatus | None = None) -> None:
        self._status = recorded or PrinterStatus(
            state=PrinterState.UNKNOWN, message="no state recorded by an operator yet"
        )
        self.file_to_carry: Path | None = None

    def status(self) -> PrinterStatus:
        return self._status

    def record(self, status: PrinterStatus) -> None:
        """What an operator saw at the printer (started, paused, finished, jammed…)."""
        self._status = status
        if not status.state.has_active_job:
            self.file_to_carry = None

    def connect(self) -> None:
        """Nothing to connect to."""

    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        if self._status.state.has_active_job:
            raise PrinterError(
                f"the printer is busy ({self._status.state}) with {self._status.job_name!r}, "
                "as last recorded by an operator",
                retryable=False,
            )
        self.file_to_carry = gcode_path
        self._status = PrinterStatus(
            state=PrinterState.AWAITING_OPERATOR,
            job_name=remote_name,
            message=f"carry {remote_name} to the printer and start it by hand",
        )

    def cancel(self) -> None:
        if self._status.state is PrinterState.AWAITING_OPERATOR:
            # Nobody has started it yet: withdrawing the hand-off is a real cancel.
            self.file_to_carry = None
            self._status = replace(self._status, state=PrinterState.IDLE, message="hand-off withdrawn")
            return
        if self._status.state.has_active_job:
            raise PrinterError(
                "this printer has no network connection: stop the job at the printer, then record it",
                retryable=False,
            )

    def pause(self) -> None:
        raise PrinterError(
            "this printer has no network connection: pause the job at the printer", retryable=False
        )

    def resume(self) -> None:
        raise PrinterError(
            "this printer has no network connection: resume the job at the printer", retryable=False
        )
