"""A real PrusaLink 0.8.1 on a stand-in MK3S firmware, for the PrusaLink driver's tests.

PrusaLink lives in its own virtualenv (scripts/ensure-prusalink); the hub only ever talks
HTTP to it. Its printer is `prusa_firmware_standin.py` on a pseudo-terminal. As
docs/printing.md ("PrusaLink") explains, PrusaLink may not reach anything off this
machine (it announces itself over mDNS and knows Prusa Connect), and it refuses a data
directory under /tmp, so it runs with `unshare -n -m`:

- a network namespace whose only interface is its own loopback, brought up;
- a private mount namespace in which the test's data directory is bind-mounted at /srv.

A network namespace has its own loopback, which the tests (in the host's namespace)
cannot connect to. Unix sockets cross network namespaces through the file system, so two
small relays carry the HTTP connections:

    test ──TCP──▶ 127.0.0.1:<port> (host relay, a thread of the test process)
         ──unix──▶ DATA/http.sock  (inner relay, a process inside the namespace)
         ──TCP──▶ 127.0.0.1:8080  (PrusaLink, inside the namespace)

Run as `python prusalink_server.py --relay SOCKET PORT`, this file is the inner relay.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).with_name("prusa_firmware_standin.py")
INSIDE_PORT = 8080
# PrusaLink waits 8 s for a USB printer to boot before it asks what it is, then reads
# the printer's settings: about 15 s in all.
START_TIMEOUT = 60.0
QUEUE_CHECK_SECONDS = 5.0  # PrusaLink polls its printer every second
USERNAME = "maker"
DIGEST_REALM = "Administrator"  # PrusaLink's fixed HTTP Digest realm


# -- the relays -------------------------------------------------------------------------


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _serve_relay(listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
    """Accept on `listener` for ever; join each connection to a new one from `connect`."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # the listener was closed
        try:
            upstream = connect()
        except OSError:
            client.close()
            continue

        def carry(a: socket.socket = client, b: socket.socket = upstream) -> None:
            other = threading.Thread(target=_pump, args=(b, a), daemon=True)
            other.start()
            _pump(a, b)
            other.join()
            a.close()
            b.close()

        threading.Thread(target=carry, daemon=True).start()


def _connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _inner_relay(socket_path: str, port: int) -> None:
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    _serve_relay(listener, lambda: _connect_tcp(port))


def _connect_tcp(port: int) -> socket.socket:
    """Connect within 5 s, then wait as long as PrusaLink takes: a timeout left on the
    socket would cut any answer slower than it (an upload's, under load) mid-way."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(None)
    return sock


# -- the server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrusaLinkServer:
    """PrusaLink and its stand-in printer, reachable at `url` (the host relay)."""

    executable: str
    datadir: Path
    api_key: str
    password: str
    username: str = USERNAME
    port: int = 0
    processes: list[subprocess.Popen] = field(default_factory=list)
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the printer, PrusaLink and the relays; wait until PrusaLink knows the
        printer, is idle and has its temperatures. Returns the seconds it took.

        PrusaLink 0.8.1 has a start-up race of its own: the port check can leave an `ok`
        unread, which then confirms the wrong command ("Unexpected message confirmation"),
        and now and then its queue never recovers. A second start from scratch does."""
        try:
            return self._start_once()
        except RuntimeError as first:
            self._clear_after_stop()
            try:
                return self._start_once()
            except RuntimeError as second:
                raise second from first

    def restart_unless_queue_moves(self) -> None:
        """Start again from scratch if PrusaLink's command queue has stopped: its start-up
        race can also strike after it reported idle, and then every later command waits
        forever (a start gets no answer). Seen once in a full run; the driver's own answer
        to that (a retryable "does not answer") is tested apart."""
        if not self.queue_moves():
            print(f"PrusaLink's command queue stands still; starting it again (logs in {self.datadir})")
            self._clear_after_stop()
            self.start()

    def restart(self) -> None:
        """Start again from scratch (on a new port: read `url` again)."""
        print(f"PrusaLink starts again (logs in {self.datadir})")
        self._clear_after_stop()
        self.start()

    def queue_moves(self, within: float = QUEUE_CHECK_SECONDS) -> bool:
        """Whether PrusaLink sends the printer a command within `within` seconds: it polls
        it every second (M220, M221, M27 P), and the stand-in logs every command."""
        since = time.time()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._last_command_time() > since:
                return True
            time.sleep(0.1)
        return False

    def _last_command_time(self) -> float:
        log = self.datadir / "firmware.log"
        try:
            with log.open("rb") as f:
                f.seek(max(0, log.stat().st_size - 4096))
                tail = f.read().decode("ascii", "replace")
        except FileNotFoundError:
            return 0.0
        for line in reversed(tail.splitlines()):
            stamp, marker, _ = line.partition(" < ")
            if marker:
                try:
                    return float(stamp)
                except ValueError:
                    continue
        return 0.0

    def _clear_after_stop(self) -> None:
        self.stop()
        for stale in ("printer", "http.sock"):  # the dead terminal's link, the relay's socket
            (self.datadir / stale).unlink(missing_ok=True)

    def _start_once(self) -> float:
        started = time.monotonic()
        link = self.datadir / "printer"
        self._spawn([sys.executable, str(STANDIN), str(link)], "firmware.log")
        while not link.exists():
            self._check_alive()
            if time.monotonic() - started > 10:
                raise RuntimeError(f"the firmware stand-in made no terminal; see {self.datadir}/firmware.log")
            time.sleep(0.05)

        inside = (
            "set -e; ip link set lo up; mkdir -p /srv; "
            f"mount --bind {shlex.quote(str(self.datadir))} /srv; "
            f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} --relay /srv/http.sock {INSIDE_PORT} & "
            f"exec {shlex.quote(self.executable)} -f -d -c /srv/prusalink.ini"
        )
        self._spawn(
            ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", inside], "prusalink.log"
        )

        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        sock_path = str(self.datadir / "http.sock")
        threading.Thread(
            target=_serve_relay, args=(self._listener, lambda: _connect_unix(sock_path)), daemon=True
        ).start()

        while time.monotonic() - started < START_TIMEOUT:
            self._check_alive()
            try:
                r = requests.get(
                    f"{self.url}/api/v1/status", headers={"X-Api-Key": self.api_key}, timeout=(1, 3)
                )
                printer = r.json()["printer"] if r.status_code == 200 else {}
                # Idle, and the first temperature report in: the printer is fully known.
                if printer.get("state") == "IDLE" and "temp_nozzle" in printer:
                    if not self.queue_moves():
                        self.stop()
                        raise RuntimeError(
                            f"PrusaLink is idle but sends its printer nothing; see {self.datadir}/firmware.log"
                        )
                    return time.monotonic() - started
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"PrusaLink was not idle with its printer within {START_TIMEOUT:.0f} s; see {self.datadir}/prusalink.log"
        )

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for process in reversed(self.processes):
            if process.poll() is None:
                # Each has its own session: the group holds it and its children only
                # (PrusaLink and the inner relay share one).
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=15)
        self.processes.clear()

    def _spawn(self, argv: list[str], log_name: str) -> None:
        with open(self.datadir / log_name, "ab") as log:  # the child keeps its own descriptor
            self.processes.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"{process.args!r} exited with {process.returncode}; see the logs in {self.datadir}"
                )


def make_prusalink_server(datadir: Path) -> PrusaLinkServer:
    executable = subprocess.run(
        [str(REPO / "scripts" / "ensure-prusalink")], check=True, capture_output=True, text=True
    ).stdout.strip()
    datadir.mkdir(parents=True, exist_ok=True)
    api_key = secrets.token_urlsafe(12)
    password = secrets.token_urlsafe(12)
    (datadir / "prusalink.ini").write_text(
        "[daemon]\n"
        "data_dir = /srv\n"
        "pid_file = /srv/prusalink.pid\n"
        "[http]\n"
        "address = 127.0.0.1\n"
        f"port = {INSIDE_PORT}\n"
        "[printer]\n"
        "port = /srv/printer\n"
        "settings = /srv/prusa_printer_settings.ini\n"
        "directory = /srv/PrusaLink gcodes\n"
        "[cameras]\n"
        "auto_detect = False\n"
    )
    # A preset printer settings file skips PrusaLink's set-up wizard. The digest is what
    # PrusaLink stores for HTTP Digest: md5 of "user:realm:password".
    digest = hashlib.md5(f"{USERNAME}:{DIGEST_REALM}:{password}".encode()).hexdigest()
    (datadir / "prusa_printer_settings.ini").write_text(
        "[printer]\n"
        "type = MK3S\n"
        "name = fabhub test MK3S\n"
        "[service::connect]\n"
        "hostname = 127.0.0.1\n"
        "tls = False\n"
        "token = \n"
        "[service::local]\n"
        "enable = 1\n"
        f"username = {USERNAME}\n"
        f"digest = {digest}\n"
        f"api_key = {api_key}\n"
    )
    return PrusaLinkServer(executable=executable, datadir=datadir, api_key=api_key, password=password)


@pytest.fixture(scope="session")
def prusalink_server(tmp_path_factory) -> Iterator[PrusaLinkServer]:
    """PrusaLink with its stand-in MK3S, started once for the session. An install or a
    start that fails fails the tests that use it (never a skip)."""
    server = make_prusalink_server(tmp_path_factory.mktemp("prusalink"))
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the relay inside PrusaLink's network namespace")
    parser.add_argument("--relay", nargs=2, metavar=("SOCKET", "PORT"), required=True)
    arguments = parser.parse_args()
    _inner_relay(arguments.relay[0], int(arguments.relay[1]))
