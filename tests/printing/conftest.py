"""A real OctoPrint 1.11.8 with its bundled Virtual Printer, for the printing tests.

OctoPrint lives in its own virtualenv (scripts/ensure-octoprint): the hub only ever talks
HTTP to it. The set-up follows docs/printing.md: a fresh base directory, a config.yaml
that skips the first-run wizard and every online feature, an admin user made with the
CLI, and an application key written straight into the appkeys plugin's keys.yaml so no
browser is needed to approve it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.machines.factories import add_member, make_lab

REPO = Path(__file__).resolve().parents[2]
DISABLED_PLUGINS = [
    "softwareupdate",
    "announcements",
    "tracking",
    "pluginmanager",
    "discovery",
    "errortracking",
    "firmware_check",
    "pi_support",
    "achievements",
    "health_check",
]
START_TIMEOUT = 60.0


@pytest.fixture
def lab(alice, bob):
    """Alice's lab, open around the clock; Bob is a member. Tests that need more redefine
    `lab` on top of this one."""
    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    return lab


@pytest.fixture(autouse=True)
def printers_on_this_machine(settings):
    """The test printers (OctoPrint, Moonraker) listen on loopback: in hub terms, the
    lab's LAN, which its operator lists (FABHUB_OUTBOUND_ALLOWED_NETWORKS)."""
    settings.FABHUB_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config_yaml(port: int) -> str:
    # JSON is valid YAML: no YAML library needed in the hub's virtualenv.
    import json

    config = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "firstRun": False,
            "onlineCheck": {"enabled": False},
            "pluginBlacklist": {"enabled": False},
        },
        "plugins": {
            "_disabled": DISABLED_PLUGINS,
            "virtual_printer": {"enabled": True, "simulated_errors": []},
        },
        "serial": {"autoconnect": False},
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class OctoPrintServer:
    """One OctoPrint process on a fixed port and base directory; kill and restart it at will."""

    executable: str
    basedir: Path
    port: int
    api_key: str
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the server and wait until its API answers; return the seconds it took."""
        assert self.process is None or self.process.poll() is not None, "already running"
        started = time.monotonic()
        log = open(self.basedir / "serve.log", "ab")  # the child keeps its own copy of the descriptor
        self.process = subprocess.Popen(
            [self.executable, "--basedir", str(self.basedir), "serve", "--iknowwhatimdoing"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        while time.monotonic() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"OctoPrint exited with {self.process.returncode}; see {self.basedir}/serve.log"
                )
            try:
                r = requests.get(
                    f"{self.url}/api/version", headers={"X-Api-Key": self.api_key}, timeout=(0.5, 2)
                )
                if r.status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"OctoPrint did not answer within {START_TIMEOUT:.0f} s; see {self.basedir}/serve.log"
        )

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """End the server the hard way, as a power cut or an OOM kill would."""
        if self.process is None or self.process.poll() is not None:
            return
        # Its own session (start_new_session): the group holds OctoPrint and only it.
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def restart(self) -> float:
        self.kill()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def make_octoprint_server(basedir: Path) -> OctoPrintServer:
    executable = subprocess.run(
        [str(REPO / "scripts" / "ensure-octoprint")], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = _free_port()
    basedir.mkdir(parents=True, exist_ok=True)
    (basedir / "config.yaml").write_text(_config_yaml(port))
    subprocess.run(
        [
            executable,
            "--basedir",
            str(basedir),
            "user",
            "add",
            "admin",
            "--password",
            secrets.token_urlsafe(16),
            "--admin",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    api_key = secrets.token_hex(16).upper()
    keys = basedir / "data" / "appkeys" / "keys.yaml"
    keys.parent.mkdir(parents=True, exist_ok=True)
    # The appkeys plugin's own format: user name -> list of {app_id, api_key}.
    keys.write_text(f"admin:\n- app_id: fabhub-tests\n  api_key: {api_key}\n")
    return OctoPrintServer(executable=executable, basedir=basedir, port=port, api_key=api_key)


@pytest.fixture(scope="session")
def octoprint_server(tmp_path_factory):
    """A running OctoPrint; tests that kill it leave the restart to `octoprint_printer`."""
    server = make_octoprint_server(tmp_path_factory.mktemp("octoprint"))
    server.start()
    yield server
    server.kill(signal.SIGTERM)


@pytest.fixture
def octoprint_printer(octoprint_server):
    """A driver for the virtual printer, connected and idle, whatever the last test left."""
    from hub.outbound import GuardedSession
    from machines.printing.drivers.octoprint import OctoPrintDriver

    if not octoprint_server.running:
        octoprint_server.start()
    driver = OctoPrintDriver(
        octoprint_server.url,
        octoprint_server.api_key,
        port="VIRTUAL",
        baudrate=115200,
        session=GuardedSession(),
    )
    driver.connect()
    driver.cancel()
    wait_for(lambda: not driver.status().state.has_active_job, timeout=10, what="the printer to be idle")
    return driver


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


def write_test_gcode(path: Path, *, moves: int = 300, length_mm: float = 10.0, feedrate: int = 6000) -> Path:
    """G-code that only moves (no heating, which the virtual printer simulates in real time).

    The virtual printer sleeps for a fraction of each move's real duration; with the
    defaults a move takes about 6 ms, so 300 moves print in about 2 s and 1000 in 6 s
    (measured on a 2-core machine). Longer or slower moves make longer prints.
    """
    lines = ["; fabhub test print", "G21", "G90", "G28", f"G1 Z0.3 F{feedrate}"]
    for i in range(moves):
        x = 50 + (length_mm if i % 2 else 0)
        y = 50 + (i % 40) * 0.5
        lines.append(f"G1 X{x:.1f} Y{y:.1f} F{feedrate}")
    lines.append("M84")
    path.write_text("\n".join(lines) + "\n")
    return path
