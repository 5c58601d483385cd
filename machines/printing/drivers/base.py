"""The interface every printer driver offers the print queue.

A driver is the only code that talks to one kind of printer (one adapter per outside
system). It raises exactly one error type, `PrinterError`, whose `retryable` flag tells
the caller whether trying the same call again later can help: a printer that does not
answer may answer in a minute; a printer that is busy with someone else's job, or a
file it rejected, will not change by itself.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


class PrinterError(Exception):
    """Anything that went wrong talking to a printer, in words a lab member can act on."""

    def __init__(self, message: str, *, retryable: bool, nothing_sent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        # The call failed before it sent the printer anything that could change it:
        # `upload_and_start` could not even ask how the printer is, or refused because it
        # is not idle. Every driver's refusals before the upload say so: the print queue
        # skips `connect()` for a printer seen idle lately and relies on this to put the
        # job back in the queue rather than fail or lose it.
        self.nothing_sent = nothing_sent

    def __repr__(self) -> str:
        return f"PrinterError({self.message!r}, retryable={self.retryable})"


class PrinterState(enum.StrEnum):
    OFFLINE = "offline"  # the print server answers, but is not connected to the printer
    CONNECTING = "connecting"
    IDLE = "idle"  # connected and ready for a job
    PRINTING = "printing"  # includes starting, finishing and resuming
    PAUSING = "pausing"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    ERROR = "error"  # the printer reported an error; a person has to look at it
    AWAITING_OPERATOR = "awaiting_operator"  # a file waits for a person to start it by hand
    UNKNOWN = "unknown"  # nothing recorded yet, or a state this driver does not know

    @property
    def has_active_job(self) -> bool:
        """True while a job occupies the printer, so no other job may start."""
        return self in _ACTIVE


_ACTIVE = frozenset(
    {
        PrinterState.PRINTING,
        PrinterState.PAUSING,
        PrinterState.PAUSED,
        PrinterState.CANCELLING,
        PrinterState.AWAITING_OPERATOR,
    }
)


class Capability(enum.StrEnum):
    """The commands a protocol offers; `PrinterDriver.capabilities` lists a driver's.

    Every driver answers `status`; a driver without `upload_and_start` takes no queued
    jobs, and one without `pause` hides the pause button rather than failing later.
    """

    CONNECT = "connect"
    UPLOAD_AND_START = "upload_and_start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


ALL_CAPABILITIES = frozenset(Capability)


@dataclass(frozen=True)
class Temperature:
    actual: float | None
    target: float | None


@dataclass(frozen=True)
class PrinterStatus:
    """What a printer is doing now, as far as its driver can tell.

    `progress` is the share of the job file sent so far, 0–100, or None without a job.
    `job_name` is the file the printer has selected: after a job finishes it is still
    named, with progress 100; after the print server restarts it is None, which is how
    the queue tells a finished job from a lost one. `message` holds the printer's own
    words (state text, error) for people, never for program logic.
    """

    state: PrinterState
    progress: float | None = None
    job_name: str | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)
    message: str = ""


def refuse_unless_idle(
    status: PrinterStatus, *, not_ready: Collection[PrinterState], not_ready_message: str
) -> None:
    """Raise the refusal that fits a printer which is not idle, before anything is sent
    (`nothing_sent`); return if it is idle. A job on it: busy, named, not retryable. A state
    in `not_ready` (not connected, not known yet): retryable, in the driver's own words.
    Anything else (an error, a print awaiting a person): a person has to look at it."""
    if status.state.has_active_job:
        raise PrinterError(
            f"the printer is busy ({status.state}) with {status.job_name!r}; "
            "it will not start another job until that one ends",
            retryable=False,
            nothing_sent=True,
        )
    if status.state in not_ready:
        raise PrinterError(not_ready_message, retryable=True, nothing_sent=True)
    if status.state is not PrinterState.IDLE:
        raise PrinterError(
            f"the printer is not ready to print ({status.message or status.state}); a person has to look at it",
            retryable=False,
            nothing_sent=True,
        )


class PrinterDriver(abc.ABC):
    """One printer, reached through one protocol.

    Every method may raise `PrinterError`; none raises anything else for a problem
    with the printer or the network. A driver whose protocol lacks a command lists the
    others in `capabilities` and raises a non-retryable `PrinterError` for it.

    Drivers that speak HTTP take their `requests.Session` from the caller (the hub
    passes its guarded client, the lab agent a plain one for its LAN) and import
    nothing from Django or the hub, so the agent can ship them unchanged.
    """

    capabilities: ClassVar[frozenset[Capability]] = ALL_CAPABILITIES

    @abc.abstractmethod
    def status(self) -> PrinterStatus:
        """The printer's state now. Raises a retryable error if it cannot be reached."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Make sure the printer is connected and ready to take commands."""

    @abc.abstractmethod
    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        """Send `gcode_path` to the printer as `remote_name` and start printing it.

        Safe to retry: if the printer already has an active job (possibly the one a
        previous, interrupted call started), it raises a non-retryable `PrinterError`
        naming that job, and changes nothing. Compare `status().job_name` with
        `remote_name` to tell the two cases apart.
        """

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the active job. Does nothing if no job is active, so retries are safe."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Pause the active job; does nothing if it is already paused."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Resume a paused job; does nothing if it is already printing."""
