"""The agent's loop: look at the printers, sync with the hub, run what it asks.

One round (`Agent.step`):
1. every printer's status is read; a change (state, job, whole percent, message) or a
   minute without a report becomes a numbered report in the durable outbox;
2. the outbox is posted to the hub (oldest first); what the hub confirms is dropped, so
   after an outage the reports replay in order, finished prints included;
3. each command the hub hands out runs once: marked *running* on disk before it touches a
   printer, *done* together with its answer. A command found *running* after a restart
   was interrupted; it runs again only through the driver's own safe-retry checks (a
   start first asks the printer whether the job is already there).
After commands the agent syncs again at once, so answers reach the hub without a wait.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from fabhub_agent import __version__
from fabhub_agent.config import AgentConfig
from fabhub_agent.hub import HubClient, HubRefused, HubUnreachable
from fabhub_agent.printers import driver_for
from fabhub_agent.state import AgentState
from machines.printing.drivers.base import PrinterDriver, PrinterError, PrinterState, PrinterStatus

logger = logging.getLogger("fabhub_agent")

HEARTBEAT_S = 60.0
MAX_BACKOFF_S = 60.0
REPORTS_PER_SYNC = 200
# A name the printer keeps as it is, and no path: the hub names files "fabhub-…gcode".
REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.gcode$")


@dataclass
class Reported:
    key: tuple[Any, ...]
    at: float


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        hub: HubClient | None = None,
        drivers: dict[int, PrinterDriver] | None = None,
        state: AgentState | None = None,
    ) -> None:
        self.config = config
        self.hub = hub or HubClient(config.hub_url, config.token)
        self.drivers = drivers if drivers is not None else {p.id: driver_for(p) for p in config.printers}
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.state = state or AgentState(config.state_dir / "agent.sqlite3")
        self.downloads = config.state_dir / "downloads"
        self.downloads.mkdir(exist_ok=True)
        self.poll_seconds = config.poll_seconds
        self.failures = 0
        self._reported: dict[int, Reported] = {}
        self._resumed = False

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        logger.info(
            "fabhub-agent %s: %d printer(s), hub %s", __version__, len(self.drivers), self.hub.base_url
        )
        while not stop.is_set():
            try:
                wait = self.step()
            except Exception:  # the loop must outlive any one bad round
                logger.exception("the round failed; trying again")
                wait = self.poll_seconds
            stop.wait(wait)

    def step(self) -> float:
        """One round; returns how long to wait before the next."""
        if not self._resumed:
            self._resume_interrupted()
            self._resumed = True
        self.observe()
        try:
            ran = self.sync_once()
        except HubUnreachable as exc:
            self.failures += 1
            backoff = min(MAX_BACKOFF_S, self.poll_seconds * 2 ** min(self.failures, 6))
            logger.warning(
                "%s; %d report(s) kept, next try in %.0f s", exc, self.state.pending_count(), backoff
            )
            return backoff
        except HubRefused as exc:
            self.failures += 1
            logger.error("%s", exc.message)
            return MAX_BACKOFF_S if exc.status in (401, 403) else min(MAX_BACKOFF_S, self.poll_seconds * 4)
        self.failures = 0
        return 0.0 if ran else self.poll_seconds

    # -- 1. printers

    def observe(self) -> None:
        now = time.time()
        for printer_id, driver in self.drivers.items():
            status = self._status(driver)
            key = (
                status.state.value,
                status.job_name,
                None if status.progress is None else int(status.progress),
                status.message,
            )
            last = self._reported.get(printer_id)
            if last is not None and last.key == key and now - last.at < HEARTBEAT_S:
                continue
            self.state.append(status_report(printer_id, status, now))
            self._reported[printer_id] = Reported(key=key, at=now)

    @staticmethod
    def _status(driver: PrinterDriver) -> PrinterStatus:
        try:
            return driver.status()
        except PrinterError as exc:
            state = PrinterState.OFFLINE if exc.retryable else PrinterState.ERROR
            return PrinterStatus(state=state, message=exc.message[:500])

    # -- 2. the hub

    def sync_once(self) -> bool:
        """Send the outbox, take the commands; True if any command ran."""
        reports = self.state.pending(REPORTS_PER_SYNC)
        try:
            answer = self.hub.sync(reports, agent=f"fabhub-agent {__version__}")
        except HubRefused as exc:
            accepted = exc.body.get("accepted_through")
            if exc.status == 409 and isinstance(accepted, int):
                self.state.acknowledge(accepted)
            raise
        self.state.acknowledge(answer["accepted_through"])
        self.poll_seconds = answer["poll_seconds"]
        ran = False
        for command in answer["commands"]:
            if self.state.command_status(command["id"]) is not None:
                continue  # taken on before: its answer is queued or already delivered
            self.run_command(command)
            ran = True
        return ran

    # -- 3. commands

    def run_command(self, command: dict[str, Any]) -> None:
        self.state.command_begin(command)
        ok, message, retryable = self._execute(command)
        if ok:
            logger.info("%s on printer %s: done", command["action"], command["printer"])
        else:
            logger.warning("%s on printer %s failed: %s", command["action"], command["printer"], message)
        self.state.command_finish(
            command["id"],
            {
                "type": "command",
                "command": command["id"],
                "ok": ok,
                "message": message[:500],
                "retryable": retryable,
            },
        )
        # Report the printer's state at once, so the hub sees the start with the answer.
        driver = self.drivers.get(command["printer"])
        if driver is not None:
            self._reported.pop(command["printer"], None)
            self.observe()

    def _execute(self, command: dict[str, Any]) -> tuple[bool, str, bool]:
        driver = self.drivers.get(command["printer"])
        if driver is None:
            return False, f"printer {command['printer']} is not configured on this agent", False
        action = command["action"]
        try:
            if action == "start":
                return self._start(driver, command)
            if action == "connect":
                driver.connect()
            elif action == "pause":
                driver.pause()
            elif action == "resume":
                driver.resume()
            elif action == "cancel":
                driver.cancel()
        except PrinterError as exc:
            return False, exc.message, exc.retryable
        return True, "", False

    def _start(self, driver: PrinterDriver, command: dict[str, Any]) -> tuple[bool, str, bool]:
        job = command.get("job")
        if not isinstance(job, dict):
            return False, "a start command without a job", False
        remote_name, sha256, size = job.get("remote_name"), job.get("sha256"), job.get("size")
        if not isinstance(remote_name, str) or not REMOTE_NAME.match(remote_name):
            return False, "refusing a file name that is not a plain .gcode name", False
        if not isinstance(sha256, str) or not isinstance(size, int) or not isinstance(job.get("url"), str):
            return False, "a start command without the file's url, size and sha256", False
        # Already there (a start interrupted after it reached the printer): never twice.
        status = driver.status()
        if status.job_name == remote_name and (status.state.has_active_job or status.progress == 100):
            return True, "already started", False
        try:
            path = self.hub.download(
                job["url"],
                sha256=sha256,
                size=size,
                max_bytes=self.config.max_gcode_bytes,
                directory=self.downloads,
            )
        except HubUnreachable as exc:
            return False, f"could not download the G-code: {exc}", True
        except HubRefused as exc:
            return False, exc.message, True
        try:
            driver.connect()
            driver.upload_and_start(path, remote_name)
        finally:
            path.unlink(missing_ok=True)
        return True, "", False

    def _resume_interrupted(self) -> None:
        """Commands the agent was running when it stopped: run them again through the
        drivers' safe-retry checks (a start that reached the printer is found there)."""
        for command in self.state.running_commands():
            logger.warning(
                "resuming %s on printer %s, interrupted by a restart", command["action"], command["printer"]
            )
            self.run_command(command)
        self.state.forget_commands_before(time.time() - 7 * 24 * 3600)


def status_report(printer_id: int, status: PrinterStatus, observed_at: float) -> dict[str, Any]:
    return {
        "type": "status",
        "printer": printer_id,
        "observed_at": observed_at,
        "state": status.state.value,
        "progress": status.progress,
        "job_name": status.job_name,
        "message": status.message[:500],
        "temperatures": {
            name[:20]: {"actual": t.actual, "target": t.target}
            for name, t in list(status.temperatures.items())[:8]
        },
    }
