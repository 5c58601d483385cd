"""Driver for printers behind OctoPrint, over its documented REST API (checked on 1.11.8).

The only module that talks to OctoPrint. Every request carries the API key in the
`X-Api-Key` header and a (connect, read) timeout, and every failure becomes a
`PrinterError`; docs/printing.md has the table of which failures are retryable.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from machines.printing.drivers.base import (
    PrinterDriver,
    PrinterError,
    PrinterState,
    PrinterStatus,
    Temperature,
    refuse_unless_idle,
)

Timeout = float | tuple[float, float]

# Looks at /api/job while it says a job is active and names no file (`_job_look`).
JOB_LOOK_TRIES = 3

# OctoPrint's state texts (octoprint.util.comm.MachineCom.getStateString in 1.11) by
# what they mean for the queue. Texts not listed fall through to the prefix rules of
# `state_from_text`, so a new wording ("Printing from SD", "Error: <firmware text>")
# still lands on the right side.
STATE_TEXTS: dict[str, PrinterState] = {
    "Operational": PrinterState.IDLE,
    "Starting": PrinterState.PRINTING,
    "Printing": PrinterState.PRINTING,
    "Finishing": PrinterState.PRINTING,
    "Resuming": PrinterState.PRINTING,
    "Starting print from SD": PrinterState.PRINTING,
    "Printing from SD": PrinterState.PRINTING,
    # Streaming a file to the printer's SD card occupies the printer like a print does.
    "Starting to send file to SD": PrinterState.PRINTING,
    "Sending file to SD": PrinterState.PRINTING,
    "Transferring file to SD": PrinterState.PRINTING,
    "Pausing": PrinterState.PAUSING,
    "Paused": PrinterState.PAUSED,
    "Cancelling": PrinterState.CANCELLING,
    "Offline": PrinterState.OFFLINE,
    "Closed": PrinterState.OFFLINE,
    "Opening serial connection": PrinterState.CONNECTING,
    "Detecting serial connection": PrinterState.CONNECTING,
    "Detecting baudrate": PrinterState.CONNECTING,
    "Connecting": PrinterState.CONNECTING,
    "Error": PrinterState.ERROR,
    "Offline after error": PrinterState.ERROR,
    "Closed with error": PrinterState.ERROR,
}


def state_from_text(text: str | None) -> PrinterState:
    """Map an OctoPrint state text to a `PrinterState`; unknown texts give UNKNOWN."""
    if not text:
        return PrinterState.UNKNOWN
    text = text.strip()
    if text in STATE_TEXTS:
        return STATE_TEXTS[text]
    lowered = text.lower()
    if "error" in lowered:
        return PrinterState.ERROR
    for prefix, state in (
        ("printing", PrinterState.PRINTING),
        ("starting", PrinterState.PRINTING),
        ("finishing", PrinterState.PRINTING),
        ("resuming", PrinterState.PRINTING),
        ("pausing", PrinterState.PAUSING),
        ("paused", PrinterState.PAUSED),
        ("cancelling", PrinterState.CANCELLING),
        ("operational", PrinterState.IDLE),
        ("offline", PrinterState.OFFLINE),
        ("closed", PrinterState.OFFLINE),
        ("opening", PrinterState.CONNECTING),
        ("detecting", PrinterState.CONNECTING),
        ("connecting", PrinterState.CONNECTING),
    ):
        if lowered.startswith(prefix):
            return state
    return PrinterState.UNKNOWN


class OctoPrintDriver(PrinterDriver):
    """One printer behind one OctoPrint server.

    `port` and `baudrate` are what `connect()` asks OctoPrint for; left None, OctoPrint
    uses its saved preference or auto-detection. `timeout` is requests' (connect, read)
    pair for every call but the upload, which gets `upload_timeout`. `connect_wait` and
    `start_wait` bound how long `connect()` and `upload_and_start()` wait for the
    printer to confirm.

    `session` is the HTTP client, always the caller's: on the hub a
    `hub.outbound.GuardedSession` (connects only where the operator's address policy
    allows, never follows a redirect, caps every answer); in the lab agent a plain
    session for the lab's LAN.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: Timeout = (3.05, 10.0),
        upload_timeout: Timeout = (3.05, 120.0),
        port: str | None = None,
        baudrate: int | None = None,
        connect_wait: float = 15.0,
        start_wait: float = 10.0,
        session: requests.Session,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.port = port
        self.baudrate = baudrate
        self.connect_wait = connect_wait
        self.start_wait = start_wait
        self._session = session
        self._session.headers["X-Api-Key"] = api_key

    def __repr__(self) -> str:
        return f"OctoPrintDriver({self.base_url!r})"  # never the key

    # -- the interface

    def status(self) -> PrinterStatus:
        return self._status(temperatures=True)

    def _status(self, *, temperatures: bool) -> PrinterStatus:
        """`status()`; without `temperatures` one request, not two (for the checks of
        `upload_and_start`, which only need the state and the file)."""
        job = self._job_look()
        text = job.get("state")
        state = state_from_text(text)
        file = (job.get("job") or {}).get("file") or {}
        completion = (job.get("progress") or {}).get("completion")
        message = text or ""
        if job.get("error"):
            message = f"{message}: {job['error']}"
        return PrinterStatus(
            state=state,
            progress=None if completion is None else max(0.0, min(100.0, float(completion))),
            job_name=file.get("name"),
            temperatures=self._temperatures()
            if temperatures and state not in (PrinterState.OFFLINE, PrinterState.UNKNOWN)
            else {},
            message=message,
        )

    def _job_look(self) -> dict[str, Any]:
        """`GET /api/job`, looked at again while it says a job is active but names no file.
        When a print ends in an error OctoPrint unselects the file before it changes the
        state, so for a moment it answers "Printing" with no file: reported as it is, the
        queue would take its own job for one the printer lost (seen once under load, after
        an M112). By the next look the state says the error."""
        for _ in range(JOB_LOOK_TRIES - 1):
            job = self._json("GET", "/api/job")
            named = ((job.get("job") or {}).get("file") or {}).get("name")
            if named or not state_from_text(job.get("state")).has_active_job:
                return job
            time.sleep(0.05)
        return self._json("GET", "/api/job")

    def connect(self) -> None:
        """Connect OctoPrint to the printer unless it already is.

        OctoPrint's `connect` command *reconnects* a connected printer, which would
        kill a running print, so this asks first.
        """
        state, text = self._connection_state()
        if state is PrinterState.IDLE or state.has_active_job:
            return
        if state is not PrinterState.CONNECTING:
            command: dict[str, Any] = {"command": "connect"}
            if self.port:
                command["port"] = self.port
            if self.baudrate:
                command["baudrate"] = self.baudrate
            self._request("POST", "/api/connection", json=command)
        deadline = time.monotonic() + self.connect_wait
        while True:
            state, text = self._connection_state()
            if state is PrinterState.IDLE or state.has_active_job:
                return
            if state is PrinterState.ERROR:
                raise PrinterError(
                    f"OctoPrint at {self.base_url} could not connect to the printer ({self._error_text(text)}); "
                    "check the cable, the power and the port",
                    retryable=False,
                )
            if time.monotonic() > deadline:
                raise PrinterError(
                    f"OctoPrint at {self.base_url} did not connect to the printer within "
                    f"{self.connect_wait:.0f} s (state: {text})",
                    retryable=True,
                )
            time.sleep(0.2)

    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        """Upload `gcode_path` as `remote_name` (a .gcode name) and print it.

        Refuses (`nothing_sent`: the printer was left as it was) unless the printer is
        connected and idle: call `connect()` first. Returns once OctoPrint reports the job
        running (or already finished, for a very short file).
        """
        # Upload, select and print in one request, without asking first how the printer
        # is: OctoPrint starts the print only if the printer is connected and not busy
        # (and the key may print), and says whether it did (`effectivePrint`), so two
        # callers cannot both start. When it did not, the printer's state says why; the
        # file it stored does nothing to the printer.
        with gcode_path.open("rb") as f:
            response = self._request(
                "POST",
                "/api/files/local",
                files={"file": (remote_name, f, "application/octet-stream")},
                data={"select": "true", "print": "true"},
                timeout=self.upload_timeout,
                allow={409},
            )
        if response.status_code == 409:
            # A file of this name is being printed (this very job, started by an earlier
            # call): OctoPrint would not overwrite it, and the printer's state names it.
            self._refuse_unless_idle()
            raise PrinterError(
                f"OctoPrint at {self.base_url} refused to store {remote_name!r}: {self._reason(response)}",
                retryable=False,
                nothing_sent=True,
            )
        uploaded = self._parsed(response, "/api/files/local")
        local = (uploaded.get("files") or {}).get("local") or {}
        path, name = local.get("path") or remote_name, local.get("name") or remote_name

        if not uploaded.get("effectivePrint"):
            self._refuse_unless_idle()
            # Idle, yet not started: select and print by command, which says why (a 409
            # if the printer got busy meanwhile, a 403 for a key that may not print).
            response = self._request(
                "POST",
                f"/api/files/local/{quote(path)}",
                json={"command": "select", "print": True},
                allow={409},
            )
            if response.status_code == 409:
                raise PrinterError(
                    f"the printer got busy before {name!r} could start ({self._reason(response)})",
                    retryable=False,
                )

        deadline = time.monotonic() + self.start_wait
        while True:
            now = self._status(temperatures=False)
            if now.state is PrinterState.CANCELLING or (now.state.has_active_job and now.job_name != name):
                # effectivePrint does not mean it started: OctoPrint says so for a printer
                # still pausing or cancelling an earlier job, then declines to select the
                # file (printer/standard.py select_file on a busy printer). Ours never ran.
                raise PrinterError(
                    f"the printer is busy ({now.state}) with {now.job_name!r}; {name!r} did not start",
                    retryable=False,
                    nothing_sent=True,
                )
            if now.job_name == name and now.state.has_active_job:
                return
            # A very short file may be done before the first look. (Selecting the file
            # set its progress back to 0, so 100 % is this print's, not an earlier one's.)
            if now.job_name == name and now.state is PrinterState.IDLE and now.progress == 100:
                return
            if now.state in (PrinterState.ERROR, PrinterState.OFFLINE):
                raise PrinterError(
                    f"the printer stopped before starting {name!r} ({now.message})",
                    retryable=now.state is PrinterState.OFFLINE,
                )
            if time.monotonic() > deadline:
                raise PrinterError(
                    f"OctoPrint accepted {name!r} but did not start printing it within "
                    f"{self.start_wait:.0f} s (state: {now.message})",
                    retryable=False,
                    # Not even selected: it never ran, and the queue may offer it again.
                    nothing_sent=now.job_name != name,
                )
            time.sleep(0.1)

    def _refuse_unless_idle(self) -> None:
        """Raise the refusal (`nothing_sent`) that fits a printer which is not connected
        and idle; return if it is."""
        try:
            now = self._status(temperatures=False)
        except PrinterError as exc:
            raise PrinterError(exc.message, retryable=exc.retryable, nothing_sent=True) from None
        refuse_unless_idle(
            now,
            not_ready=(PrinterState.OFFLINE, PrinterState.CONNECTING),
            not_ready_message=f"OctoPrint at {self.base_url} is not connected to the printer ({now.message}); "
            "connect it first",
        )

    def cancel(self) -> None:
        self._job_command({"command": "cancel"}, "cancel")

    def pause(self) -> None:
        self._job_command({"command": "pause", "action": "pause"}, "pause")

    def resume(self) -> None:
        self._job_command({"command": "pause", "action": "resume"}, "resume")

    # -- the client underneath

    def _job_command(self, body: dict[str, str], verb: str) -> None:
        response = self._request("POST", "/api/job", json=body, allow={409})
        if response.status_code != 409:
            return
        # 409: no active job, or no printer connected. Cancelling nothing is done
        # already (so a retried cancel succeeds); pausing or resuming nothing is a
        # mistake worth telling about.
        now = self.status()
        if verb == "cancel" and not now.state.has_active_job:
            return
        raise PrinterError(f"there is no print job to {verb} ({now.message})", retryable=False)

    def _connection_state(self) -> tuple[PrinterState, str]:
        current = self._json("GET", "/api/connection").get("current") or {}
        text = current.get("state") or ""
        return state_from_text(text), text

    def _error_text(self, fallback: str) -> str:
        try:
            return self._json("GET", "/api/job").get("error") or fallback
        except PrinterError:
            return fallback

    def _temperatures(self) -> dict[str, Temperature]:
        # 409 when the printer is not operational: temperatures are a bonus, never a failure.
        response = self._request("GET", "/api/printer", params={"exclude": "sd,state"}, allow={409})
        if response.status_code != 200:
            return {}
        try:
            readings = response.json().get("temperature") or {}
        except ValueError:
            return {}
        return {
            name: Temperature(actual=reading.get("actual"), target=reading.get("target"))
            for name, reading in readings.items()
            if isinstance(reading, dict) and name != "history"
        }

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._parsed(self._request(method, path, **kwargs), path)

    def _parsed(self, response: requests.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PrinterError(
                f"{self.base_url} answered {path} with something other than OctoPrint's JSON; "
                "is the address right?",
                retryable=False,
            )
        return data

    def _request(
        self, method: str, path: str, *, allow: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        url = self.base_url + path
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise PrinterError(
                f"the printer's OctoPrint at {self.base_url} does not answer (no reply to {method} {path} in time)",
                retryable=True,
                nothing_sent=isinstance(exc, requests.ConnectTimeout),
            ) from None
        except requests.ConnectionError as exc:
            # Refused by the policy, or no connection made: the request never left, which
            # `upload_and_start` passes on (`nothing_sent`), as it does its own refusals.
            if "refused by the hub's address policy" in str(exc):
                raise PrinterError(
                    f"the hub does not connect to {self.base_url}: {exc}", retryable=False, nothing_sent=True
                ) from None
            reason = getattr(exc.args[0] if exc.args else None, "reason", None)
            raise PrinterError(
                f"the printer's OctoPrint at {self.base_url} does not answer (connection failed)",
                retryable=True,
                nothing_sent=isinstance(reason, NewConnectionError),
            ) from None
        except requests.RequestException as exc:
            raise PrinterError(
                # A reset mid-body (OctoPrint closes an upload over its limit before
                # reading it all) lands here: named like OctoPrint's other refusals.
                f"OctoPrint at {self.base_url} broke off {method} {path}, could not send it: {exc}",
                retryable=False,
            ) from None

        status = response.status_code
        if 300 <= status < 400 and status not in allow:
            # Never followed: the printer's address was checked, wherever it points is not.
            raise PrinterError(
                f"OctoPrint at {self.base_url} answered {method} {path} with a redirect "
                f"(HTTP {status}); the hub does not follow redirects: give the printer's own address",
                retryable=False,
            )
        if status < 400 or status in allow:
            return response
        reason = self._reason(response)
        # OctoPrint treats an unknown key as no key at all: a GET gets a 403, and a POST a
        # 400 for the missing CSRF token a browser session would carry. This client
        # always sends its key, so both mean the key was not accepted.
        if status in (401, 403) or (status == 400 and "CSRF" in reason):
            raise PrinterError(
                f"the API key was refused by OctoPrint at {self.base_url} (HTTP {status}); "
                "check the key, and that its user may print",
                retryable=False,
            )
        if status == 409:
            raise PrinterError(
                f"OctoPrint at {self.base_url} refused {method} {path}: {reason}", retryable=False
            )
        if status in (400, 413, 415):
            raise PrinterError(
                f"OctoPrint at {self.base_url} rejected the request: {reason}", retryable=False
            )
        if status >= 500:
            raise PrinterError(
                f"OctoPrint at {self.base_url} failed on {method} {path} (HTTP {status}: {reason})",
                retryable=True,
            )
        raise PrinterError(
            f"OctoPrint at {self.base_url} answered {method} {path} with HTTP {status}: {reason}",
            retryable=False,
        )

    @staticmethod
    def _reason(response: requests.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
        return (response.text or response.reason or "").strip()[:200]
