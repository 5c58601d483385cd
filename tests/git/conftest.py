"""A real hub served by gunicorn, and the real git and git-lfs clients to talk to it.

gunicorn, not Django's test server: git sends pushes over 1 MB with chunked transfer
encoding, which only a production WSGI server de-chunks. The server shares the test
database file and a data directory with the test process.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import database_url_for_subprocesses

# git on a bare repository of a test's own (no hub), as a fixed author, with no system
# or user configuration: what the tests of Repository's plain reads compare against.
PLAIN_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.org",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def plain_git(cwd: Path, *args: str) -> str:
    """`git <args>` in `cwd` (also its HOME); its output, stripped. Fails the test if git does."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, env={**PLAIN_GIT_ENV, "HOME": str(cwd)}
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HubServer:
    url: str
    data_dir: Path
    log: Path

    def repo_url(self, owner: str, slug: str, *, user: str | None = None, token: str | None = None) -> str:
        host = self.url.removeprefix("http://")
        credentials = f"{quote(user, safe='')}:{quote(token, safe='')}@" if user and token else ""
        return f"http://{credentials}{host}/{owner}/{slug}.git"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_to_keep() -> int:
    """A free port below the kernel's ephemeral range (ip_local_port_range), for a server
    a test stops and starts again on the same address: no other process asking for any
    free port (`free_port`, a client's connection) can be given it while it is down, as
    a port from that range can when two suites share the machine."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(low - 12_000, 1_024), low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def start_gunicorn(
    env: dict[str, str], log: Path, *, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Serve the hub with gunicorn on `port` (a free one by default); return the process
    once it answers."""
    port = port or free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(gunicorn),
                "hub.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "300",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    # /healthz answers as soon as a worker serves requests (the schema, polled before,
    # is built on first request and took over 30 s on a loaded machine).
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def hub_server(django_db_setup, django_db_blocker, tmp_path_factory) -> HubServer:
    from django.conf import settings

    data_dir = tmp_path_factory.mktemp("hub-data")
    log = data_dir / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hub.settings",
        "DEBUG": "0",
        "SECRET_KEY": "git-http-tests",
        "FABHUB_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url_for_subprocesses(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FABHUB_MAX_GIT_BLOB_BYTES": str(settings.FABHUB_MAX_GIT_BLOB_BYTES),
    }
    proc, url = start_gunicorn(env, log)
    yield HubServer(url=url, data_dir=data_dir, log=log)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def repos_dir(hub_server, settings):
    """Overrides the suite's per-test folder: the server must see the same repositories."""
    settings.REPOS_DIR = hub_server.data_dir / "repos"
    settings.DATA_DIR = hub_server.data_dir
    return settings.REPOS_DIR


class Git:
    """The stock git CLI in a clean home: no user config, no credential prompts."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Tess Maker",
            "GIT_AUTHOR_EMAIL": "tess@example.org",
            "GIT_COMMITTER_NAME": "Tess Maker",
            "GIT_COMMITTER_EMAIL": "tess@example.org",
            "GIT_CONFIG_NOSYSTEM": "1",
        }

    def __call__(
        self, *args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd or self.home,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


@pytest.fixture
def git(tmp_path) -> Git:
    home = tmp_path / "home"
    home.mkdir()
    return Git(home)
