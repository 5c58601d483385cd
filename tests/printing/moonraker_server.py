"""A real Moonraker 0.11.0 in front of a Klippy stand-in, for the Moonraker driver tests.

Moonraker lives in its own virtualenv (scripts/ensure-moonraker): the hub only ever talks
HTTP to it. Behind it, `klippy_standin.py` answers on Klippy's unix socket in Klipper's
place. Each server gets a fresh data folder with an empty `misc/usb.ids` and
`[announcements] enable_moonlight: False`, and binds 127.0.0.1 on a free port: nothing
in it reaches outside this machine.

Two servers, both session-wide:
- `moonraker_server`: trusts loopback clients (`[authorization] trusted_clients`), so a
  driver needs no key, with the stand-in behind it (`.klippy` stops and starts it);
- `moonraker_locked_server`: trusts nobody and has no Klippy; its `.api_key` is the one
  Moonraker generated, read once through `/access/api_key` while it still trusted
  loopback, before its restart with no trusted clients at all.

Import the fixtures into a test module (`from tests.printing.moonraker_server import ...`);
this module is not a conftest, so nothing here runs unless a test asks for it. A failed
install or start fails the test: nothing is skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "klippy_standin.py"
START_TIMEOUT = 30.0
# The stand-in "prints" this many bytes of G-code a second: a 40 kB file takes under a
# second, a 2 MB one 40 s (so a test always cuts it short).
BYTES_PER_SECOND = 50_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(interval)


def write_gcode(path: Path, *, size: int, hotend: int = 210, bed: int = 60) -> Path:
    """A G-code file of about `size` bytes that heats to `hotend`/`bed` and then moves."""
    lines = ["; fabhub test print", f"M140 S{bed}", f"M104 S{hotend}", "G28"]
    total = sum(len(line) + 1 for line in lines)
    i = 0
    while total < size:
        line = f"G1 X{50 + i % 40} Y{50 + (i // 40) % 40} F6000"
        lines.append(line)
        total += len(line) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def _stop(process: subprocess.Popen | None) -> None:
    """End a process we started, by its own process group (start_new_session)."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class KlippyStandin:
    """The stand-in for Klippy on its unix socket; stop and start it to cut Moonraker off."""

    socket_path: Path
    gcodes: Path
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        assert not self.running, "already running"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(STANDIN),
                    str(self.socket_path),
                    "--gcodes",
                    str(self.gcodes),
                    "--bytes-per-second",
                    str(BYTES_PER_SECOND),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Klippy stand-in did not start; see {self.log}")
            time.sleep(0.02)

    def stop(self) -> None:
        _stop(self.process)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class MoonrakerServer:
    """One Moonraker process on a fixed port and data folder."""

    executable: str
    datadir: Path
    port: int
    klippy: KlippyStandin | None = None
    api_key: str | None = None
    trusted: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gcodes(self) -> Path:
        return self.datadir / "gcodes"

    @property
    def config(self) -> Path:
        return self.datadir / "config" / "moonraker.conf"

    def write_config(self) -> None:
        trusted = "".join(f"\n  {network}" for network in self.trusted)
        self.config.write_text(
            "[server]\n"
            "host: 127.0.0.1\n"
            f"port: {self.port}\n"
            f"klippy_uds_address: {self.datadir / 'comms' / 'klippy.sock'}\n"
            "[machine]\n"
            "provider: none\n"
            "[file_manager]\n"
            "check_klipper_config_path: False\n"
            "[authorization]\n"
            f"trusted_clients:{trusted}\n"
            "[announcements]\n"
            "enable_moonlight: False\n"
        )

    def start(self) -> None:
        """Start Moonraker (and the stand-in, if it has one) and wait until it is ready."""
        assert not self.running, "already running"
        if self.klippy is not None and not self.klippy.running:
            self.klippy.start()
        self.write_config()
        started = time.monotonic()
        with (self.datadir / "moonraker.out").open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-d", str(self.datadir), "-c", str(self.config), "-l", str(self.log)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        headers = {"X-Api-Key": self.api_key} if self.api_key else {}
        while time.monotonic() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"Moonraker exited with {self.process.returncode}; see {self.log}")
            try:
                info = requests.get(f"{self.url}/server/info", headers=headers, timeout=(0.5, 2)).json()[
                    "result"
                ]
                if self.klippy is None or info.get("klippy_state") == "ready":
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Moonraker was not ready within {START_TIMEOUT:.0f} s; see {self.log}")

    def stop(self) -> None:
        _stop(self.process)

    def stop_all(self) -> None:
        self.stop()
        if self.klippy is not None:
            self.klippy.stop()

    @property
    def log(self) -> Path:
        return self.datadir / "logs" / "moonraker.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def make_moonraker_server(datadir: Path, *, with_klippy: bool, trusted: list[str]) -> MoonrakerServer:
    executable = subprocess.run(
        [str(REPO / "scripts" / "ensure-moonraker")], check=True, capture_output=True, text=True
    ).stdout.strip()
    for folder in ("config", "comms", "gcodes", "logs", "misc"):
        (datadir / folder).mkdir(parents=True, exist_ok=True)
    # Moonraker downloads usb.ids at start when it has none.
    (datadir / "misc" / "usb.ids").touch()
    klippy = None
    if with_klippy:
        klippy = KlippyStandin(
            datadir / "comms" / "klippy.sock", datadir / "gcodes", datadir / "logs" / "klippy.log"
        )
    return MoonrakerServer(
        executable=executable, datadir=datadir, port=free_port(), klippy=klippy, trusted=trusted
    )


@pytest.fixture(scope="session")
def moonraker_server(tmp_path_factory):
    """Moonraker trusting loopback, the Klippy stand-in behind it; both running."""
    server = make_moonraker_server(
        tmp_path_factory.mktemp("moonraker"), with_klippy=True, trusted=["127.0.0.0/8"]
    )
    server.start()
    yield server
    server.stop_all()


@pytest.fixture(scope="session")
def moonraker_locked_server(tmp_path_factory):
    """Moonraker that trusts no client, so every request needs `.api_key`; no Klippy."""
    server = make_moonraker_server(
        tmp_path_factory.mktemp("moonraker-locked"), with_klippy=False, trusted=["127.0.0.1"]
    )
    server.start()
    try:
        server.api_key = requests.get(f"{server.url}/access/api_key", timeout=5).json()["result"]
    finally:
        server.stop()
    # The key lives in Moonraker's database and survives the restart; the trust does not.
    server.trusted = []
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moonraker_printer(moonraker_server):
    """A driver (plain requests session, no key) for an idle printer, whatever the last test left."""
    from machines.printing.drivers.moonraker import MoonrakerDriver

    if moonraker_server.klippy is not None and not moonraker_server.klippy.running:
        moonraker_server.klippy.start()
    if not moonraker_server.running:
        moonraker_server.start()
    driver = MoonrakerDriver(moonraker_server.url, None, session=requests.Session())
    driver.connect()
    driver.cancel()
    wait_for(lambda: not driver.status().state.has_active_job, timeout=10, what="the printer to be idle")
    return driver
