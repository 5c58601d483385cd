"""The agent's client of the hub: outbound HTTPS only, every answer bounded and checked.

The hub is trusted to say *what* to print, never *where* to connect: the agent talks
only to the hub URL of its configuration (HTTPS, or plain HTTP to this machine for tests
and the demo), follows no redirect, reads at most `MAX_ANSWER_BYTES` of a sync answer,
downloads G-code only from the hub's own agent paths, never more than the size the
command declared, and checks its sha256 before any printer sees it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

logger = logging.getLogger("fabhub_agent")

MAX_ANSWER_BYTES = 1024 * 1024
CHUNK = 256 * 1024
TIMEOUT = (5.0, 30.0)  # per connect and per read
SYNC_DEADLINE_S = 60.0  # a whole sync answer, however slowly it drips
MIN_DOWNLOAD_BYTES_PER_S = 20_000  # a download slower than this is given up
DOWNLOAD_PATH = re.compile(r"/api/agent/v1/commands/[0-9a-f-]{36}/gcode")
SHA256 = re.compile(r"[0-9a-f]{64}")


class HubUnreachable(Exception):
    """The hub did not answer (network, timeout, 5xx): try again later."""


class HubRefused(Exception):
    """The hub answered with a refusal (`status`) or something that is not a valid answer."""

    def __init__(
        self, message: str, *, status: int | None = None, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body or {}


def check_hub_url(url: str) -> str:
    """The hub's base URL: https://, or http:// to a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname:
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return url.rstrip("/")
        except ValueError:
            if parts.hostname == "localhost":
                return url.rstrip("/")
    raise ValueError(f"the hub URL must be https:// (or http:// to this machine for tests): {url!r}")


class HubClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        proxy: str | None = None,
    ) -> None:
        self.base_url = check_hub_url(base_url)
        self.session = session or requests.Session()
        # Only what the configuration says: no proxy, CA bundle or .netrc from the environment.
        self.session.trust_env = False
        if ca_bundle:
            self.session.verify = ca_bundle
        if proxy:
            self.session.proxies = {"https": proxy, "http": proxy}
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "fabhub-agent"
        # No compressed answers: the size caps below count the bytes as they arrive.
        self.session.headers["Accept-Encoding"] = "identity"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(
                method, self.base_url + path, timeout=TIMEOUT, allow_redirects=False, stream=True, **kwargs
            )
        except requests.RequestException as exc:
            raise HubUnreachable(f"the hub does not answer: {exc.__class__.__name__}") from exc

    def sync(
        self,
        reports: list[dict[str, Any]],
        *,
        agent: str,
        instance: str = "",
        first_held: int | None = None,
        more: bool = False,
    ) -> dict[str, Any]:
        """Post the reports; the hub's answer, checked for shape (HubRefused if not)."""
        body_out = {
            "agent": agent,
            "instance": instance,
            "first_held": first_held,
            "more": more,
            "reports": reports,
        }
        response = self._request("POST", "/api/agent/v1/sync", json=body_out)
        with response:
            body = _bounded_json(response, deadline=time.monotonic() + SYNC_DEADLINE_S)
        if response.status_code >= 500:
            raise HubUnreachable(f"the hub answered {response.status_code}")
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) else None
            raise HubRefused(
                f"the hub refused the sync ({response.status_code}): {str(message or '')[:300]}",
                status=response.status_code,
                body=body if isinstance(body, dict) else None,
            )
        return check_sync_answer(body)

    def download(self, path: str, *, sha256: str, size: int, max_bytes: int, directory: Path) -> Path:
        """Fetch a job's G-code into `directory`; HubRefused unless it is exactly what the
        command declared (size and sha256)."""
        if not DOWNLOAD_PATH.fullmatch(path):
            raise HubRefused(f"refusing to download from {path[:100]!r}: not the hub's G-code path")
        if not SHA256.fullmatch(sha256) or not 0 < size <= max_bytes:
            raise HubRefused(f"refusing a G-code of {size} bytes (this agent takes at most {max_bytes})")
        response = self._request("GET", path)
        with response:
            if response.status_code >= 500:
                raise HubUnreachable(f"the hub answered {response.status_code}")
            if response.status_code != 200:
                raise HubRefused(
                    f"the hub refused the download ({response.status_code})", status=response.status_code
                )
            digest = hashlib.sha256()
            received = 0
            deadline = time.monotonic() + 60 + size / MIN_DOWNLOAD_BYTES_PER_S
            handle, name = tempfile.mkstemp(prefix="job-", suffix=".gcode", dir=directory)
            try:
                with os.fdopen(handle, "wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        if time.monotonic() > deadline:
                            raise HubUnreachable("the G-code download is too slow; given up")
                        received += len(chunk)
                        if received > size:
                            raise HubRefused(f"the G-code is longer than the {size} bytes declared")
                        digest.update(chunk)
                        out.write(chunk)
                if received != size or digest.hexdigest() != sha256:
                    raise HubRefused("the G-code does not match its declared size and sha256")
            except BaseException:
                Path(name).unlink(missing_ok=True)
                raise
        return Path(name)


def _bounded_json(response: requests.Response, *, deadline: float) -> Any:
    data = b""
    for chunk in response.iter_content(64 * 1024):
        if time.monotonic() > deadline:
            raise HubUnreachable("the hub's answer is too slow; given up")
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            raise HubRefused(f"the hub's answer is over {MAX_ANSWER_BYTES} bytes")
    try:
        return json.loads(data or b"{}")
    except ValueError as exc:
        if response.status_code >= 500:
            return {}
        raise HubRefused(
            f"the hub's answer is not JSON ({response.status_code})", status=response.status_code
        ) from exc


def check_sync_answer(body: Any) -> dict[str, Any]:
    """The parts of a sync answer the agent uses, each of the expected type."""
    if not isinstance(body, dict):
        raise HubRefused("the hub's answer is not an object")
    accepted = body.get("accepted_through")
    poll = body.get("poll_seconds", 3)
    commands = body.get("commands", [])
    if isinstance(accepted, bool) or not isinstance(accepted, int) or accepted < 0:
        raise HubRefused("the hub's answer has no valid 'accepted_through'")
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0.2 <= poll <= 3600:
        raise HubRefused("the hub's answer has no valid 'poll_seconds'")
    if not isinstance(commands, list) or len(commands) > 100:
        raise HubRefused("the hub's answer has no valid 'commands'")
    checked = []
    for command in commands:
        if not (
            isinstance(command, dict)
            and isinstance(command.get("id"), str)
            and re.fullmatch(r"[0-9a-f-]{36}", command["id"])
            and isinstance(command.get("printer"), int)
            and command.get("action") in ("start", "pause", "resume", "cancel", "connect")
        ):
            raise HubRefused("the hub's answer holds a malformed command")
        checked.append(command)
    return {"accepted_through": accepted, "poll_seconds": float(poll), "commands": checked}
