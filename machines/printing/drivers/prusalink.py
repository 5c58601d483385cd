"""Driver for Prusa printers behind PrusaLink, over its v1 REST API (checked on 0.8.1).

The only module that talks to PrusaLink. Every request carries the credentials (the
`X-Api-Key` header, or HTTP Digest when a user name is given) and a (connect, read)
timeout, and every failure becomes a `PrinterError`; docs/printing.md ("PrusaLink") has
the table of which failures are retryable.

PrusaLink's quirks this driver works around, all measured on 0.8.1:

- an upload must say `Content-Type: text/x.gcode`: with `application/octet-stream`
  PrusaLink answers 500;
- after an upload it takes PrusaLink a moment to see the file: a start right after it
  can be a 404;
- the start is answered only once PrusaLink's command queue has run it, which can take
  over 10 s when a stop is still waiting there (`START_READ_TIMEOUT`);
- a job that ends stays FINISHED or STOPPED, during which a new print is refused with
  409 "Not in state to print": PrusaLink clears it on the first serial command the
  printer confirms after 11 s (`PRINT_END_TIMEOUT`), and it sends one about every
  second when all is well, later when the Pi is busy (11-12 s measured, under load too);
- as soon as a job ends, `/api/v1/job` and the job part of `/api/v1/status` are empty:
  the file's name is then read from the legacy `/api/job`, which keeps the last file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import HTTPDigestAuth

from machines.printing.drivers.base import (
    PrinterDriver,
    PrinterError,
    PrinterState,
    PrinterStatus,
    Temperature,
    refuse_unless_idle,
)

Timeout = float | tuple[float, float]
# Looks at the state and the job before a job that ended between the two requests is
# reported with the name of PrusaLink's last file instead.
SNAPSHOT_TRIES = 3
# PrusaLink answers a start only once its command queue has run it, after whatever was
# queued before: a stop waits up to 15 s there for the printer to say STOPPED
# (`STATE_CHANGE_TIMEOUT`), and a start sent meanwhile got no answer within the usual
# 10 s (seen once under load). The start may read this long.
START_READ_TIMEOUT = 30.0

# PrusaLink's printer states (prusa.connect.printer.const.State) by what they mean for
# the queue.
STATES: dict[str, PrinterState] = {
    "IDLE": PrinterState.IDLE,
    # READY: a person confirmed at the printer that the bed is clear; idle all the same.
    "READY": PrinterState.IDLE,
    "PRINTING": PrinterState.PRINTING,
    "PAUSED": PrinterState.PAUSED,
    # A job that just ended: idle (no other job may start for a few seconds, which
    # `upload_and_start` waits out), the job still named.
    "FINISHED": PrinterState.IDLE,
    "STOPPED": PrinterState.IDLE,
    "ERROR": PrinterState.ERROR,
    # ATTENTION: the firmware waits for a person at the printer ("paused for user":
    # filament runout or change, a failed bed levelling, a message to confirm on the
    # screen). PrusaLink keeps the job running through it (ERROR would end the job,
    # ATTENTION does not), and the print goes on once the person has acted. Nothing
    # failed yet, and no other job may start: AWAITING_OPERATOR, not ERROR.
    "ATTENTION": PrinterState.AWAITING_OPERATOR,
    # BUSY: the firmware runs something that is not a print job (homing, heating or a
    # calibration started at the printer); it ends by itself. Not idle, not a job.
    "BUSY": PrinterState.UNKNOWN,
}


def state_from_text(text: str | None) -> PrinterState:
    """Map a PrusaLink printer state to a `PrinterState`; unknown names give UNKNOWN."""
    return STATES.get((text or "").strip().upper(), PrinterState.UNKNOWN)


@dataclass(frozen=True)
class _Snapshot:
    """One look at the printer: what `status()` returns, plus what the commands need."""

    status: PrinterStatus
    raw_state: str  # PrusaLink's own word: FINISHED and STOPPED are both IDLE above
    job_id: int | None


class PrusaLinkDriver(PrinterDriver):
    """One printer behind one PrusaLink (the service on a Raspberry Pi at an MK3S/MK2.5S).

    Authenticates with `X-Api-Key: api_key`, or, when `username` is given, with HTTP
    Digest as that user with `api_key` as the password (PrusaLink offers both; which one
    is enabled is set in PrusaLink). `timeout` is requests' (connect, read) pair for
    every call but the upload, which gets `upload_timeout`. `start_wait` bounds how long
    a start, pause, resume or cancel waits for PrusaLink to confirm it; `settle_wait`
    how long `upload_and_start` waits for a job that just ended to clear (PrusaLink
    0.8.1 holds FINISHED and STOPPED for 11 s and then until its next serial command is
    confirmed: 20 s leaves room for a busy Pi, where 12 s made a start right after a
    job ended fail now and then). `storage` is PrusaLink's storage
    to upload to and print from: `local` (the Pi's disk; the file is streamed to the
    printer line by line) is the only one PrusaLink 0.8.1 can write.

    `session` is the HTTP client, always the caller's, and is never changed: the
    credentials go with each request, so one session may serve many printers.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: requests.Session,
        username: str | None = None,
        timeout: Timeout = (3.05, 10.0),
        upload_timeout: Timeout = (3.05, 120.0),
        start_wait: float = 15.0,
        settle_wait: float = 20.0,
        storage: str = "local",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.start_wait = start_wait
        self.settle_wait = settle_wait
        self.storage = storage
        self._session = session
        # The digest object remembers PrusaLink's challenge, so after the first answer
        # every request (the upload too) is sent once, already signed.
        self._auth: HTTPDigestAuth | None = HTTPDigestAuth(username, api_key) if username else None
        self._headers: dict[str, str] = {} if username else {"X-Api-Key": api_key}

    def __repr__(self) -> str:
        return f"PrusaLinkDriver({self.base_url!r})"  # never the key or the password

    # -- the interface

    def status(self) -> PrinterStatus:
        return self._snapshot().status

    def connect(self) -> None:
        """PrusaLink keeps its own serial connection to the printer and reconnects by
        itself: there is nothing to ask for. Raises a retryable error if PrusaLink does
        not answer."""
        self._json("GET", "/api/v1/status")

    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        """Upload `gcode_path` to the storage as `remote_name` (a .gcode name) and print it.

        Refuses, changing nothing on the printer (`nothing_sent`), unless it is idle. The file is
        uploaded first and started with a separate request, so the start can be tried
        again while a job that just ended settles without sending the file twice.
        Returns once PrusaLink reports the job running (or finished, for a very short
        file).
        """
        try:
            before = self._snapshot()
        except PrinterError as exc:
            raise PrinterError(exc.message, retryable=exc.retryable, nothing_sent=True) from None
        self._refuse_unless_idle(before.status, remote_name)

        path = f"/api/v1/files/{quote(self.storage)}/{quote(remote_name)}"
        with gcode_path.open("rb") as f:
            self._request(
                "PUT",
                path,
                data=f,
                # Overwrite: a retried call finds its own earlier upload there.
                headers={"Content-Type": "text/x.gcode", "Overwrite": "?1"},
                timeout=self.upload_timeout,
            )
        self._start(path, remote_name)

        deadline = time.monotonic() + self.start_wait
        while True:
            now = self._snapshot()
            if now.status.job_name == remote_name and (
                now.status.state.has_active_job or now.raw_state == "FINISHED"
            ):
                return
            if now.status.state is PrinterState.ERROR:
                raise PrinterError(
                    f"the printer stopped before starting {remote_name!r} ({now.status.message})",
                    retryable=False,
                )
            if time.monotonic() > deadline:
                raise PrinterError(
                    f"PrusaLink accepted {remote_name!r} but did not start printing it within "
                    f"{self.start_wait:.0f} s (state: {now.status.message})",
                    retryable=False,
                )
            time.sleep(0.2)

    def cancel(self) -> None:
        now = self._snapshot()
        if not now.status.state.has_active_job:
            return  # nothing to cancel: a retried cancel is not an error
        self._job_command("DELETE", now, "cancel", done=lambda s: not s.status.state.has_active_job)

    def pause(self) -> None:
        now = self._snapshot()
        if now.status.state is PrinterState.PAUSED:
            return
        self._job_command("PUT", now, "pause", done=lambda s: s.status.state is PrinterState.PAUSED)

    def resume(self) -> None:
        now = self._snapshot()
        if now.status.state is PrinterState.PRINTING:
            return
        self._job_command("PUT", now, "resume", done=lambda s: s.status.state is PrinterState.PRINTING)

    # -- the steps

    def _refuse_unless_idle(self, status: PrinterStatus, name: str) -> None:
        refuse_unless_idle(
            status,
            not_ready=(PrinterState.UNKNOWN,),
            not_ready_message=f"the printer is not ready for {name!r} yet ({status.message}); try again shortly",
        )

    def _start(self, path: str, name: str) -> None:
        """Start the uploaded file, waiting out PrusaLink's short refusals: the file not
        seen yet (404) and a job that just ended (409 while FINISHED or STOPPED)."""
        deadline = time.monotonic() + self.settle_wait
        while True:
            response = self._request("POST", path, allow={404, 409}, timeout=self._start_timeout())
            if response.status_code < 400:
                return
            now = self._snapshot()
            if response.status_code == 409:
                # Someone started a job since the first look: refuse, as if it had been
                # there then (the upload does not change what the printer does).
                self._refuse_unless_idle(now.status, name)
                if now.raw_state not in ("FINISHED", "STOPPED", "IDLE", "READY"):
                    raise PrinterError(
                        f"PrusaLink at {self.base_url} will not start {name!r}: {self._reason(response)}",
                        retryable=False,
                    )
            if time.monotonic() > deadline:
                if response.status_code == 404:
                    raise PrinterError(
                        f"PrusaLink at {self.base_url} does not find {name!r} after uploading it: "
                        f"{self._reason(response)}",
                        retryable=True,
                    )
                raise PrinterError(
                    f"the printer's last job has not cleared within {self.settle_wait:.0f} s "
                    f"({now.raw_state}: {self._reason(response)}); try again shortly",
                    retryable=True,
                )
            time.sleep(0.5 if response.status_code == 409 else 0.1)

    def _start_timeout(self) -> Timeout:
        if isinstance(self.timeout, tuple):
            return (self.timeout[0], max(self.timeout[1], START_READ_TIMEOUT))
        return (self.timeout, max(self.timeout, START_READ_TIMEOUT))

    def _job_command(
        self, method: str, now: _Snapshot, verb: str, *, done: Callable[[_Snapshot], bool]
    ) -> None:
        """Send pause, resume or cancel for the current job and wait until PrusaLink's
        state says it happened: PrusaLink queues the command and answers at once."""
        if now.job_id is None or not now.status.state.has_active_job:
            raise PrinterError(f"there is no print job to {verb} ({now.status.message})", retryable=False)
        path = f"/api/v1/job/{now.job_id}" + ("" if verb == "cancel" else f"/{verb}")
        response = self._request(method, path, allow={409})
        if response.status_code == 409:
            # Not printing, not paused, or not that job any more: fine if the printer is
            # where we wanted it anyway (a retry, or a person at the printer was faster).
            again = self._snapshot()
            if done(again):
                return
            raise PrinterError(
                f"PrusaLink at {self.base_url} will not {verb} the job ({again.status.message}): "
                f"{self._reason(response)}",
                retryable=False,
            )
        deadline = time.monotonic() + self.start_wait
        while True:
            again = self._snapshot()
            if done(again):
                return
            if time.monotonic() > deadline:
                raise PrinterError(
                    f"PrusaLink took the {verb} command but the printer did not follow within "
                    f"{self.start_wait:.0f} s (state: {again.status.message})",
                    retryable=True,
                )
            time.sleep(0.2)

    def _snapshot(self) -> _Snapshot:
        # The state and the job are two requests. A job that ends between them leaves a
        # PRINTING state and an empty /api/v1/job: reported as it is, a job with no name,
        # the queue would take its own job for lost. Look again: by then the state says
        # FINISHED or STOPPED (PrusaLink empties the job as it changes the state).
        for _ in range(SNAPSHOT_TRIES - 1):
            snapshot, whole = self._look()
            if whole:
                return snapshot
            time.sleep(0.05)
        return self._look()[0]

    def _look(self) -> tuple[_Snapshot, bool]:
        """One look at the printer, and whether it is whole: False when the state says a
        job is active but PrusaLink has none to show (its name is then the legacy
        endpoint's last file)."""
        data = self._json("GET", "/api/v1/status")
        printer = data.get("printer") or {}
        raw = str(printer.get("state") or "").upper()
        state = state_from_text(raw)
        message = raw or "no state"
        health = printer.get("status_printer") or {}
        if health.get("ok") is False and health.get("message"):
            message = f"{message}: {health['message']}"

        job_id: int | None = None
        job_name: str | None = None
        progress: float | None = None
        whole = True
        if state.has_active_job:
            job = self._job()
            if job:
                job_id = job.get("id")
                file = job.get("file") or {}
                job_name = file.get("display_name") or file.get("name")
                progress = _percent(job.get("progress"))
            else:
                whole = False
                job_name = self._last_file()
        elif raw in ("FINISHED", "STOPPED"):
            # The job has already left /api/v1/job; the legacy endpoint still names its file.
            job_name = self._last_file()
            progress = 100.0 if raw == "FINISHED" else None

        snapshot = _Snapshot(
            status=PrinterStatus(
                state=state,
                progress=progress,
                job_name=job_name,
                temperatures=_temperatures(printer),
                message=message,
            ),
            raw_state=raw,
            job_id=job_id,
        )
        return snapshot, whole

    def _last_file(self) -> str | None:
        legacy = (self._json("GET", "/api/job").get("job") or {}).get("file") or {}
        return legacy.get("display") or legacy.get("name")

    def _job(self) -> dict[str, Any] | None:
        response = self._request("GET", "/api/v1/job")
        if response.status_code == 204:
            return None  # the job ended between the two requests
        return self._decode(response, "/api/v1/job")

    # -- the client underneath

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._decode(self._request(method, path, **kwargs), path)

    def _decode(self, response: requests.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PrinterError(
                f"{self.base_url} answered {path} with something other than PrusaLink's JSON; is the address right?",
                retryable=False,
            )
        return data

    def _request(
        self, method: str, path: str, *, allow: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs["headers"] = {**self._headers, **kwargs.get("headers", {})}
        kwargs["auth"] = self._auth
        try:
            response = self._session.request(method, self.base_url + path, **kwargs)
        except requests.Timeout:
            raise PrinterError(
                f"the printer's PrusaLink at {self.base_url} does not answer (no reply to {method} {path} in time)",
                retryable=True,
            ) from None
        except requests.ConnectionError as exc:
            if "refused by the hub's address policy" in str(exc):
                raise PrinterError(
                    f"the hub does not connect to {self.base_url}: {exc}", retryable=False
                ) from None
            raise PrinterError(
                f"the printer's PrusaLink at {self.base_url} does not answer (connection failed)",
                retryable=True,
            ) from None
        except requests.RequestException as exc:
            raise PrinterError(
                f"could not send {method} {path} to {self.base_url}: {exc}", retryable=False
            ) from None

        status = response.status_code
        if status in allow:
            return response
        if 300 <= status < 400:
            # Never followed: the printer's address was checked, wherever it points is not.
            raise PrinterError(
                f"PrusaLink at {self.base_url} answered {method} {path} with a redirect (HTTP {status}); "
                "the hub does not follow redirects: give the printer's own address",
                retryable=False,
            )
        if status < 400:
            return response
        reason = self._reason(response)
        if status in (401, 403):
            refused = "the user name and password" if self._auth else "the API key"
            raise PrinterError(
                f"PrusaLink at {self.base_url} refused {refused} (HTTP {status}: {reason}); "
                "check them in the printer's connection settings",
                retryable=False,
            )
        if status >= 500:
            raise PrinterError(
                f"PrusaLink at {self.base_url} failed on {method} {path} (HTTP {status}: {reason})",
                retryable=True,
            )
        raise PrinterError(
            f"PrusaLink at {self.base_url} refused {method} {path} (HTTP {status}): {reason}", retryable=False
        )

    @staticmethod
    def _reason(response: requests.Response) -> str:
        """PrusaLink's own words: a JSON error's title and message, or the first lines of
        its plain-text errors ("Not in state to print / Printer is not in state to
        print."); an HTML page gives only the HTTP reason."""
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type:
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict):
                words = [str(data[k]) for k in ("title", "message") if data.get(k)]
                if words:
                    return ": ".join(words)[:300]
        if content_type.startswith("text/plain"):
            lines = [line.strip() for line in response.text.splitlines() if line.strip()]
            words = [line for line in lines if not line.startswith("See:")][:2]
            if words:
                return ": ".join(words)[:300]
        return (response.reason or f"HTTP {response.status_code}").strip()


def _percent(value: Any) -> float | None:
    try:
        return max(0.0, min(100.0, float(value)))
    except (TypeError, ValueError):
        return None


def _temperatures(printer: dict[str, Any]) -> dict[str, Temperature]:
    # The same keys as OctoPrint's: the queue and the pages read "tool0" and "bed".
    readings = {}
    for key, actual, target in (("tool0", "temp_nozzle", "target_nozzle"), ("bed", "temp_bed", "target_bed")):
        if printer.get(actual) is not None or printer.get(target) is not None:
            readings[key] = Temperature(actual=printer.get(actual), target=printer.get(target))
    return readings
