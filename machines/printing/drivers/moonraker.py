"""Driver for Klipper printers behind Moonraker, over its documented HTTP API (checked on 0.11.0).

The only module that talks to Moonraker. Klipper has two processes: Klippy, which runs
the printer, and Moonraker, the API server in front of it; "Klippy not connected" is the
Klipper form of OctoPrint's "Offline". Every request carries a (connect, read) timeout
and, when one is configured, the API key in the `X-Api-Key` header (Moonraker's trusted
clients need none), and every failure becomes a `PrinterError`; docs/printing.md has the
state and the retryable tables.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar

import requests

from machines.printing.drivers.base import (
    ALL_CAPABILITIES,
    Capability,
    PrinterDriver,
    PrinterError,
    PrinterState,
    PrinterStatus,
    Temperature,
    refuse_unless_idle,
)

Timeout = float | tuple[float, float]

# The printer objects `status()` reads, in the documented `?obj&obj` form (all fields).
STATUS_OBJECTS = ("webhooks", "print_stats", "virtual_sdcard", "extruder", "heater_bed")

# Klipper's heater objects under the names OctoPrint uses, so temperatures read the same
# whichever driver a printer has.
HEATERS = {"extruder": "tool0", "heater_bed": "bed"}

# `print_stats.state` while Klippy is ready. `complete` and `cancelled` mean idle with the
# last file still named: the queue tells them apart by progress (100 or not).
JOB_STATES: dict[str, PrinterState] = {
    "standby": PrinterState.IDLE,
    "printing": PrinterState.PRINTING,
    "paused": PrinterState.PAUSED,
    "complete": PrinterState.IDLE,
    "cancelled": PrinterState.IDLE,
    "error": PrinterState.ERROR,
}

# `webhooks.state` (Klippy's own state) when it is not "ready".
KLIPPY_STATES: dict[str, PrinterState] = {
    "startup": PrinterState.CONNECTING,
    "shutdown": PrinterState.ERROR,
    "error": PrinterState.ERROR,
    "disconnected": PrinterState.OFFLINE,
}

# A cancelled job never reads as finished, even if Klipper had read the whole file
# (the queue takes "ours, idle, 100 %" as done).
CANCELLED_PROGRESS_CAP = 99.9


class MoonrakerDriver(PrinterDriver):
    """One Klipper printer behind one Moonraker server.

    `api_key` is Moonraker's API key (`/access/api_key`), or None where Moonraker lists
    the caller among its `trusted_clients`. `timeout` is requests' (connect, read) pair for
    every call but the upload, which gets `upload_timeout`. `start_wait` and
    `connect_wait` bound how long `upload_and_start()` and `connect()` wait for the
    printer to confirm.

    `session` is the HTTP client, always the caller's: on the hub a
    `hub.outbound.GuardedSession`, in the lab agent a plain session for the lab's LAN.
    The key goes on each request, not on the session, so a session shared between
    printers never carries one printer's key to another.
    """

    capabilities: ClassVar[frozenset[Capability]] = ALL_CAPABILITIES

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        session: requests.Session,
        timeout: Timeout = (3.05, 10.0),
        upload_timeout: Timeout = (3.05, 120.0),
        start_wait: float = 10.0,
        connect_wait: float = 15.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.start_wait = start_wait
        self.connect_wait = connect_wait
        self._session = session
        self._headers = {"X-Api-Key": api_key} if api_key else {}

    def __repr__(self) -> str:
        return f"MoonrakerDriver({self.base_url!r})"  # never the key

    # -- the interface

    def status(self) -> PrinterStatus:
        return self._read()[1]

    def connect(self) -> None:
        """Make sure Klippy is connected and ready, restarting it if it shut down.

        Nothing is sent to a ready Klippy, printing or not. After a shutdown (an
        emergency stop, a microcontroller error) or a configuration error this asks for
        a FIRMWARE_RESTART: only that clears a microcontroller's error, and it reloads
        the configuration as RESTART does. A Klippy that is not running at all cannot be
        asked anything; Moonraker reconnects to it by itself once it is back, so this
        only waits for that.
        """
        klippy, now = self._read()
        if klippy == "ready":
            return
        restarted = False
        if klippy in ("shutdown", "error"):
            self._request("POST", "/printer/firmware_restart")
            restarted = True
        left_error = False
        deadline = time.monotonic() + self.connect_wait
        while True:
            time.sleep(0.2)
            klippy, now = self._read()
            if klippy == "ready":
                return
            if klippy in ("startup", "disconnected"):
                left_error = True
            elif restarted and left_error:
                raise PrinterError(
                    f"Klipper behind Moonraker at {self.base_url} came back from a restart "
                    f"in {klippy} ({now.message}); a person has to look at the printer",
                    retryable=False,
                )
            if time.monotonic() > deadline:
                raise PrinterError(
                    f"Klipper behind Moonraker at {self.base_url} was not ready within "
                    f"{self.connect_wait:.0f} s ({now.message or klippy})",
                    retryable=True,
                )

    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        """Upload `gcode_path` as `remote_name` into Moonraker's gcodes folder and print it.

        Refuses, changing nothing (`nothing_sent`), unless Klippy is ready and idle:
        call `connect()` first. Uploads with a SHA-256 checksum (Moonraker drops a damaged upload), then
        starts the file with its own request rather than the upload's `print=true`:
        started that way, Klipper's refusal ("SD busy" if the printer got busy since the
        check) comes back as an error, where `print=true` only reports that nothing
        started. Returns once the printer reports the job running (or finished, for a
        very short file).
        """
        try:
            before = self.status()
        except PrinterError as exc:
            raise PrinterError(exc.message, retryable=exc.retryable, nothing_sent=True) from None
        refuse_unless_idle(
            before,
            not_ready=(PrinterState.OFFLINE, PrinterState.CONNECTING),
            not_ready_message=f"Klipper behind Moonraker at {self.base_url} is not ready ({before.message}); "
            "connect it first",
        )

        with gcode_path.open("rb") as f:
            uploaded = self._json(
                "POST",
                "/server/files/upload",
                files={"file": (remote_name, f, "application/octet-stream")},
                data={"root": "gcodes", "checksum": _sha256(gcode_path)},
                timeout=self.upload_timeout,
            )
        item = uploaded.get("item")
        name = str((item.get("path") if isinstance(item, dict) else None) or remote_name)

        response = self._request("POST", "/printer/print/start", params={"filename": name}, allow={400})
        if response.status_code == 400:
            reason = self._reason(response)
            raise PrinterError(
                f"Klipper did not start {name!r}: {reason}"
                + (" (the printer got busy first)" if "busy" in reason.lower() else ""),
                retryable=False,
            )

        deadline = time.monotonic() + self.start_wait
        while True:
            now = self.status()
            if now.job_name == name and now.state.has_active_job:
                return
            # A very short file may be done before the first look; but "idle at 100 %"
            # is also what an earlier print of the same name left behind.
            if (
                now.job_name == name
                and now.state is PrinterState.IDLE
                and now.progress == 100
                and (before.job_name, before.progress) != (name, 100)
            ):
                return
            if now.state in (PrinterState.ERROR, PrinterState.OFFLINE):
                raise PrinterError(
                    f"the printer stopped before starting {name!r} ({now.message})",
                    retryable=now.state is PrinterState.OFFLINE,
                )
            if time.monotonic() > deadline:
                # Safe to retry: a retry finds the job running (and names it) or starts it.
                raise PrinterError(
                    f"Moonraker accepted {name!r} but the printer did not report it printing within "
                    f"{self.start_wait:.0f} s (state: {now.message})",
                    retryable=True,
                )
            time.sleep(0.1)

    def cancel(self) -> None:
        if self.status().state.has_active_job:
            self._request("POST", "/printer/print/cancel")

    def pause(self) -> None:
        now = self.status()
        if now.state in (PrinterState.PAUSED, PrinterState.PAUSING):
            return
        if now.state is not PrinterState.PRINTING:
            raise PrinterError(f"there is no print job to pause ({now.message})", retryable=False)
        self._request("POST", "/printer/print/pause")

    def resume(self) -> None:
        now = self.status()
        if now.state is PrinterState.PRINTING:
            return
        if now.state is not PrinterState.PAUSED:
            raise PrinterError(f"there is no paused print job to resume ({now.message})", retryable=False)
        self._request("POST", "/printer/print/resume")

    # -- reading the state

    def _read(self) -> tuple[str, PrinterStatus]:
        """Klippy's own state ("ready", "startup", "shutdown", "error", "disconnected")
        and the normalised status."""
        response = self._request(
            "GET", "/printer/objects/query?" + "&".join(STATUS_OBJECTS), allow={404, 503}
        )
        if response.status_code in (404, 503):
            # Moonraker answers 503 while Klippy is away, and 404 until Klippy has listed
            # its endpoints (/printer/* do not exist yet): ask the server itself.
            return self._read_without_klippy()
        status = _result(self._decode(response, "/printer/objects/query")).get("status")
        if not isinstance(status, dict):
            raise self._not_moonraker("/printer/objects/query")
        return status_from_objects(status)

    def _read_without_klippy(self) -> tuple[str, PrinterStatus]:
        info = _result(self._json("GET", "/server/info"))
        klippy = str(info.get("klippy_state") or "disconnected")
        if not info.get("klippy_connected"):
            klippy = "disconnected"
        message = info.get("klippy_message") or f"Klippy {klippy}"
        if klippy == "ready":
            # Between Klippy's "ready" and Moonraker registering /printer/*: a moment.
            klippy = "startup"
        return klippy, PrinterStatus(
            state=KLIPPY_STATES.get(klippy, PrinterState.UNKNOWN), message=str(message)
        )

    # -- the client underneath

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._decode(self._request(method, path, **kwargs), path)

    def _decode(self, response: requests.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._not_moonraker(path)
        return data

    def _not_moonraker(self, path: str) -> PrinterError:
        # A whole answer that is not Moonraker's JSON (a web page, another service) will
        # not change by asking again; a connection cut mid-answer is caught as such below.
        return PrinterError(
            f"{self.base_url} answered {path} with something other than Moonraker's JSON; is the address right?",
            retryable=False,
        )

    def _request(
        self, method: str, path: str, *, allow: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("headers", self._headers)
        url = self.base_url + path
        where = path.split("?", 1)[0]
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.Timeout:
            raise PrinterError(
                f"the printer's Moonraker at {self.base_url} does not answer (no reply to {method} {where} in time)",
                retryable=True,
            ) from None
        except requests.ConnectionError as exc:
            if "refused by the hub's address policy" in str(exc):
                raise PrinterError(
                    f"the hub does not connect to {self.base_url}: {exc}", retryable=False
                ) from None
            raise PrinterError(
                f"the printer's Moonraker at {self.base_url} does not answer (connection failed)",
                retryable=True,
            ) from None
        except requests.exceptions.ChunkedEncodingError:
            raise PrinterError(
                f"the printer's Moonraker at {self.base_url} broke off its answer to {method} {where}",
                retryable=True,
            ) from None
        except requests.RequestException as exc:
            raise PrinterError(
                f"could not send {method} {where} to {self.base_url}: {exc}", retryable=False
            ) from None

        status = response.status_code
        if 300 <= status < 400 and status not in allow:
            # Never followed: the printer's address was checked, wherever it points is not.
            raise PrinterError(
                f"Moonraker at {self.base_url} answered {method} {where} with a redirect "
                f"(HTTP {status}); the hub does not follow redirects: give the printer's own address",
                retryable=False,
            )
        if status < 400 or status in allow:
            return response
        reason = self._reason(response)
        if status == 401:
            if self._headers:
                message = f"Moonraker at {self.base_url} refused the API key (HTTP 401); check the key"
            else:
                message = (
                    f"Moonraker at {self.base_url} wants an API key (HTTP 401): give its key, "
                    "or list the hub among its trusted_clients"
                )
            raise PrinterError(message, retryable=False)
        if status == 422 and "checksum" in reason.lower():
            # The file arrived damaged and Moonraker dropped it: sending it again can work.
            raise PrinterError(
                f"Moonraker at {self.base_url} received a damaged upload: {reason}", retryable=True
            )
        if status >= 500:
            raise PrinterError(
                f"Moonraker at {self.base_url} failed on {method} {where} (HTTP {status}: {reason})",
                retryable=True,
            )
        # 400 (Klipper refused the command), 403 (a file in use, a protected path), 404
        # (no such endpoint or file), 413 and the rest: the same request fails the same way.
        raise PrinterError(
            f"Moonraker at {self.base_url} refused {method} {where} (HTTP {status}): {reason}",
            retryable=False,
        )

    @staticmethod
    def _reason(response: requests.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            data = None
        # Moonraker's errors: {"error": {"code": 400, "message": "...", "traceback": "..."}}
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"])[:200]
            if isinstance(error, str) and error:
                return error[:200]
        return (response.text or response.reason or "").strip()[:200]


def _result(data: dict[str, Any]) -> dict[str, Any]:
    result = data.get("result")
    return result if isinstance(result, dict) else {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def status_from_objects(objects: dict[str, Any]) -> tuple[str, PrinterStatus]:
    """Map Klipper's printer objects to Klippy's state and a `PrinterStatus`."""
    webhooks = _object(objects, "webhooks")
    stats = _object(objects, "print_stats")
    sdcard = _object(objects, "virtual_sdcard")
    klippy = str(webhooks.get("state") or "ready")
    job = str(stats.get("state") or "")
    job_name = str(stats.get("filename") or "") or None

    temperatures = {
        label: Temperature(actual=_number(heater.get("temperature")), target=_number(heater.get("target")))
        for name, label in HEATERS.items()
        if (heater := _object(objects, name))
    }

    progress: float | None = None
    if job_name is not None:
        fraction = _number(sdcard.get("progress"))
        if fraction is not None:
            progress = max(0.0, min(100.0, fraction * 100))
        if job == "complete":
            progress = 100.0
        elif job == "cancelled" and progress is not None:
            progress = min(progress, CANCELLED_PROGRESS_CAP)

    if klippy != "ready":
        state = KLIPPY_STATES.get(klippy, PrinterState.UNKNOWN)
        message = str(webhooks.get("state_message") or f"Klippy {klippy}")
    else:
        state = JOB_STATES.get(job, PrinterState.UNKNOWN)
        message = job or "unknown"
        if stats.get("message"):
            message = f"{message}: {stats['message']}"
    return klippy, PrinterStatus(
        state=state, progress=progress, job_name=job_name, temperatures=temperatures, message=message
    )


def _object(objects: dict[str, Any], name: str) -> dict[str, Any]:
    value = objects.get(name)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
