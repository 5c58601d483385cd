"""A simulated printer: a `PrinterDriver` with no hardware behind it.

For the agent's benchmark (hundreds of agents, each with a printer, on one machine) and
for trying the agent without a printer. It "prints" a file in `print_seconds`, honours
pause, resume and cancel, and behaves like the real drivers at the edges: a start while
busy is refused without changing anything, and a finished job stays named at 100 %.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from machines.printing.drivers.base import (
    PrinterDriver,
    PrinterError,
    PrinterState,
    PrinterStatus,
    Temperature,
)


class SimulatedPrinter(PrinterDriver):
    def __init__(self, *, print_seconds: float = 30.0) -> None:
        self.print_seconds = print_seconds
        self._lock = threading.Lock()
        self._job: str | None = None
        self._state = PrinterState.IDLE
        self._done = 0.0  # seconds printed before the current run
        self._since: float | None = None  # when the current run started
        self.starts = 0

    def _progress(self) -> float | None:
        if self._job is None:
            return None
        printed = self._done + (time.monotonic() - self._since if self._since is not None else 0.0)
        if self._state is PrinterState.PRINTING and printed >= self.print_seconds:
            self._state, self._since, self._done = PrinterState.IDLE, None, self.print_seconds
            return 100.0
        return min(100.0, 100.0 * printed / self.print_seconds) if self.print_seconds else 100.0

    def status(self) -> PrinterStatus:
        with self._lock:
            progress = self._progress()
            hot = self._state is PrinterState.PRINTING
            return PrinterStatus(
                state=self._state,
                progress=None if progress is None else round(progress, 1),
                job_name=self._job,
                temperatures={
                    "tool0": Temperature(actual=215.0 if hot else 25.0, target=215.0 if hot else 0.0),
                    "bed": Temperature(actual=60.0 if hot else 25.0, target=60.0 if hot else 0.0),
                },
                message=str(self._state),
            )

    def connect(self) -> None:
        return None

    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        with self._lock:
            self._progress()
            if self._state.has_active_job:
                raise PrinterError(f"the printer is busy with {self._job!r}", retryable=False)
            if not gcode_path.is_file():
                raise PrinterError("no such file to print", retryable=False)
            self._job, self._state, self._done, self._since = (
                remote_name,
                PrinterState.PRINTING,
                0.0,
                time.monotonic(),
            )
            self.starts += 1

    def pause(self) -> None:
        with self._lock:
            self._progress()
            if self._state is PrinterState.PRINTING and self._since is not None:
                self._done += time.monotonic() - self._since
                self._state, self._since = PrinterState.PAUSED, None

    def resume(self) -> None:
        with self._lock:
            if self._state is PrinterState.PAUSED:
                self._state, self._since = PrinterState.PRINTING, time.monotonic()

    def cancel(self) -> None:
        with self._lock:
            self._progress()
            if self._state.has_active_job:
                if self._since is not None:
                    self._done += time.monotonic() - self._since
                self._state, self._since = PrinterState.IDLE, None
