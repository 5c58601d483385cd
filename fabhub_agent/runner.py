"""The agent's loop: look at the printers, sync with the hub, run what it asks.

One round (`Agent.step`):
1. every printer's status is read (in parallel: a switched-off printer's timeout does not
   hold up the others); a change (state, job, whole percent, message) becomes a numbered
   report in the durable outbox, and so does a minute without one while nothing waits
   to be sent;
2. the outbox is posted to the hub (oldest first); what the hub confirms is dropped, so
   after an outage the reports replay in order, finished prints included;
3. each command the hub hands out runs once, on that printer's own worker thread (the
   loop keeps syncing meanwhile, so a long upload never makes the agent look silent):
   marked *running* on disk before it touches a printer, *done* together with its
   answer. A command found *running* after a restart was interrupted; it runs again only
   through the driver's safe-retry checks, and a start that left any trace on the
   printer is not started again.
The loop syncs again at once when a command finished or the outbox holds more than one
sync carries.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.gcode")


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
        self.hub = hub or HubClient(
            config.hub_url, config.token, ca_bundle=config.ca_bundle, proxy=config.proxy
        )
        self.drivers = drivers if drivers is not None else {p.id: driver_for(p) for p in config.printers}
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.state = state or AgentState(config.state_dir / "agent.sqlite3")
        self.downloads = config.state_dir / "downloads"
        self.downloads.mkdir(exist_ok=True)
        self.poll_seconds = config.poll_seconds
        self.failures = 0
        self.wake = threading.Event()  # set when a command finished: sync at once
        self._reported: dict[int, Reported] = {}
        self._reported_lock = threading.Lock()
        self._resumed = False
        self._queues: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._workers: dict[int, threading.Thread] = {}
        self._observer = ThreadPoolExecutor(
            max_workers=min(8, max(1, len(self.drivers))), thread_name_prefix="observe"
        )

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
            self.wake.wait(wait)
            self.wake.clear()
        for commands in self._queues.values():
            commands.put({})  # stop the workers
        self._observer.shutdown(wait=False)

    def step(self) -> float:
        """One round; returns how long to wait before the next."""
        if not self._resumed:
            self._resume_interrupted()
            self._resumed = True
        self.observe()
        try:
            more = self.sync_once()
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
        return 0.0 if more else self.poll_seconds

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every printer's worker has run what it was given (tests, --once)."""
        deadline = time.monotonic() + timeout
        for commands in self._queues.values():
            while commands.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.01)

    # -- 1. printers

    def observe(self) -> None:
        now = time.time()
        statuses = dict(
            zip(self.drivers, self._observer.map(self._status, self.drivers.values()), strict=True)
        )
        quiet_outbox = self.state.pending_count() == 0
        for printer_id, status in statuses.items():
            self._note(printer_id, status, now, heartbeat=quiet_outbox)

    def _note(self, printer_id: int, status: PrinterStatus, now: float, *, heartbeat: bool = True) -> None:
        key = (
            status.state.value,
            status.job_name,
            None if status.progress is None else int(status.progress),
            status.message,
        )
        with self._reported_lock:
            last = self._reported.get(printer_id)
            if last is not None and last.key == key and (not heartbeat or now - last.at < HEARTBEAT_S):
                return
            self.state.append(status_report(printer_id, status, now))
            self._reported[printer_id] = Reported(key=key, at=now)

    @staticmethod
    def _status(driver: PrinterDriver) -> PrinterStatus:
        try:
            return driver.status()
        except PrinterError as exc:
            state = PrinterState.OFFLINE if exc.retryable else PrinterState.ERROR
            return PrinterStatus(state=state, message=exc.message[:500])
        except Exception as exc:  # a driver bug must not stop the others being observed
            logger.exception("reading a printer's status failed")
            return PrinterStatus(
                state=PrinterState.UNKNOWN, message=f"the agent could not read it: {exc!r}"[:500]
            )

    # -- 2. the hub

    def sync_once(self) -> bool:
        """Send the outbox, take the commands; True if the agent should sync again at once."""
        reports = self.state.pending(REPORTS_PER_SYNC + 1)
        more = len(reports) > REPORTS_PER_SYNC
        reports = reports[:REPORTS_PER_SYNC]
        try:
            answer = self.hub.sync(
                reports,
                agent=f"fabhub-agent {__version__}",
                instance=self.state.instance,
                first_held=reports[0]["seq"] if reports else self.state.next_seq(),
                more=more,
            )
        except HubRefused as exc:
            accepted = exc.body.get("accepted_through")
            if exc.status == 409 and isinstance(accepted, int):
                self.state.acknowledge(accepted)
            raise
        self.state.acknowledge(answer["accepted_through"])
        self.poll_seconds = answer["poll_seconds"]
        for command in answer["commands"]:
            if self.state.command_begin(command):
                self._give(command)
        return more

    # -- 3. commands

    def _give(self, command: dict[str, Any]) -> None:
        printer_id = command["printer"]
        if printer_id not in self._queues:
            self._queues[printer_id] = queue.Queue()
            worker = threading.Thread(
                target=self._work, args=(self._queues[printer_id],), name=f"printer-{printer_id}", daemon=True
            )
            self._workers[printer_id] = worker
            worker.start()
        self._queues[printer_id].put(command)

    def _work(self, commands: queue.Queue[dict[str, Any]]) -> None:
        while True:
            command = commands.get()
            try:
                if not command:
                    return
                self.run_command(command)
            finally:
                commands.task_done()

    def run_command(self, command: dict[str, Any], *, resumed: bool = False) -> None:
        try:
            ok, message, retryable = self._execute(command, resumed=resumed)
        except Exception as exc:  # a full disk, a driver bug: answer it, never leave it running
            logger.exception("%s on printer %s failed unexpectedly", command["action"], command["printer"])
            ok, message, retryable = False, f"the agent failed running it: {exc!r}", True
        if ok:
            logger.info(
                "%s on printer %s: done%s",
                command["action"],
                command["printer"],
                f" ({message})" if message else "",
            )
        else:
            logger.warning("%s on printer %s failed: %s", command["action"], command["printer"], message)
        # The printer's state first, so the hub sees the start together with its answer.
        driver = self.drivers.get(command["printer"])
        if driver is not None:
            with self._reported_lock:
                self._reported.pop(command["printer"], None)
            self._note(command["printer"], self._status(driver), time.time())
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
        self.wake.set()

    def _execute(self, command: dict[str, Any], *, resumed: bool) -> tuple[bool, str, bool]:
        driver = self.drivers.get(command["printer"])
        if driver is None:
            # Another printer of the lab may take the job: retryable.
            return False, f"printer {command['printer']} is not configured on this agent", True
        action = command["action"]
        try:
            if action == "start":
                return self._start(driver, command, resumed=resumed)
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

    def _start(
        self, driver: PrinterDriver, command: dict[str, Any], *, resumed: bool
    ) -> tuple[bool, str, bool]:
        job = command.get("job")
        if not isinstance(job, dict):
            return False, "a start command without a job", False
        remote_name, sha256, size = job.get("remote_name"), job.get("sha256"), job.get("size")
        if not isinstance(remote_name, str) or not REMOTE_NAME.fullmatch(remote_name):
            return False, "refusing a file name that is not a plain .gcode name", False
        if not isinstance(sha256, str) or not isinstance(size, int) or not isinstance(job.get("url"), str):
            return False, "a start command without the file's url, size and sha256", False
        status = driver.status()
        if status.job_name == remote_name:
            if status.state.has_active_job or status.progress == 100:
                return True, "already started", False
            if resumed:
                # It reached the printer before the agent stopped, and ended (stopped at
                # the printer, most likely): never print it a second time by itself.
                return False, "interrupted by a restart of the agent; not started again", False
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
            self.run_command(command, resumed=True)
        self.state.forget_commands_before(time.time() - 30 * 24 * 3600)


def _finite(value: float | None, low: float, high: float) -> float | None:
    """A reading the hub accepts, or None: a faulty sensor's NaN or 9999 is no reading."""
    if value is None or not isinstance(value, int | float) or math.isnan(value) or not low <= value <= high:
        return None
    return float(value)


def status_report(printer_id: int, status: PrinterStatus, observed_at: float) -> dict[str, Any]:
    progress = _finite(status.progress, -1e9, 1e9)
    return {
        "type": "status",
        "printer": printer_id,
        "observed_at": observed_at,
        "state": status.state.value,
        "progress": None if progress is None else min(100.0, max(0.0, progress)),
        "job_name": status.job_name[:255] if status.job_name else None,
        "message": status.message[:500],
        "temperatures": {
            name[:20]: {"actual": _finite(t.actual, -300, 2000), "target": _finite(t.target, -300, 2000)}
            for name, t in list(status.temperatures.items())[:8]
        },
    }
