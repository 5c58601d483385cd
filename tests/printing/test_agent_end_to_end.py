"""The lab agent for real: the hub served by gunicorn, the agent as its own process
(`python -m fabhub_agent`), and a real OctoPrint with its Virtual Printer that only the
agent can reach (the hub holds no address or key for it).

The faults: the hub killed mid-print and restarted; the agent killed mid-print and
restarted; a partition (the agent cannot reach the hub for longer than the hub waits
before calling it silent); a revoked token. Each time the job finishes and is recorded
once, and the printer started it once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from machines.models import AgentCommand, LabAgent, Printer, PrintJob, PrintRecord
from machines.printing import agents
from machines.printing import services as printing
from tests.conftest import database_url_for_subprocesses
from tests.git.conftest import port_to_keep, start_gunicorn
from tests.printing.conftest import wait_for, write_test_gcode
from tests.printing.factories import gcode_upload, make_printer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
S = PrintJob.Status
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Hub:
    """gunicorn serving the hub on a fixed port; kill it and start it again at will."""

    env: dict[str, str]
    data_dir: Path
    port: int
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.process, _ = start_gunicorn(
            self.env, self.data_dir / f"gunicorn-{self.starts}.log", port=self.port
        )

    def kill(self) -> None:
        """Kill gunicorn and its workers at once, as a crash or a power cut would."""
        if self.process is not None:
            subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def hub(django_db_setup, tmp_path, settings):
    data_dir = tmp_path / "hub-data"
    data_dir.mkdir()
    settings.DATA_DIR = data_dir  # the test process stores G-code where gunicorn serves it
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hub.settings",
        "DEBUG": "0",
        "SECRET_KEY": "agent-tests",
        "FABHUB_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url_for_subprocesses(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FABHUB_PRINT_TICK_S": "1",
        "FABHUB_AGENT_POLL_S": "1",
        "FABHUB_AGENT_SILENT_S": "6",
        "FABHUB_PRINT_STATE_MAX_AGE_S": "60",
    }
    server = Hub(env=env, data_dir=data_dir, port=port_to_keep())
    server.start()
    yield server
    server.kill()


class Relay:
    """A TCP relay between the agent and the hub that can cut the line (a partition)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.stopped = threading.Event()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if self.cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the 5 s were for connecting: a slow answer must not be cut
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def partition(self) -> None:
        """Cut the line: open connections drop, new ones are refused."""
        self.cut.set()
        for sock in self.open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open.clear()

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@dataclass
class AgentProcess:
    config: Path
    log: Path
    process: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.log.with_name(f"{self.log.stem}-{len(self.logs) + 1}.log")
        self.logs.append(log)
        with log.open("wb") as out:
            # The agent's own interpreter settings: no Django settings module in sight.
            env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fabhub_agent", "--config", str(self.config), "--verbose"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None

    def text(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs)


@pytest.fixture
def via_agent(lab, alice, hub, octoprint_printer, octoprint_server, tmp_path):
    """The lab's printer via an agent that reaches the hub through a relay; returns
    (printer, agent row, agent process, relay)."""
    printer = make_printer(lab, slug="octo", profile_name="virtual, no heating")
    agent, token = agents.agent_create(lab=lab, actor=alice, name="Pi in the lab")
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    relay = Relay(hub.port)
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[hub]
url = "http://127.0.0.1:{relay.port}"
token = "{token}"
state_dir = "{tmp_path / "agent-state"}"

[[printer]]
id = {printer.pk}
protocol = "octoprint"
url = "{octoprint_server.url}"
api_key = "{octoprint_server.api_key}"
port = "VIRTUAL"
baudrate = 115200
"""
    )
    process = AgentProcess(config=config, log=tmp_path / "agent.log")
    process.start()
    wait_for(
        lambda: refreshed(printer).state == "idle", timeout=30, what="the agent to report the printer idle"
    )
    yield printer, agent, process, relay
    process.stop()
    relay.close()


def refreshed(row):
    row.refresh_from_db()
    return row


def submit(lab, owner, tmp_path, *, moves: int) -> PrintJob:
    path = write_test_gcode(tmp_path / f"part-{moves}.gcode", moves=moves)
    # Sending runs inline here (the suite's queue is eager): it returns once the agent
    # answered the start command.
    return printing.print_job_submit(lab=lab, owner=owner, upload=gcode_upload(path))


def wait_status(job: PrintJob, statuses, *, timeout: float) -> PrintJob:
    return wait_for(
        lambda: refreshed(job).status in statuses and job,
        timeout=timeout,
        what=f"job {job.pk} to become {' or '.join(statuses)} (it is {job.status}: {job.reason})",
        interval=0.2,
    )


def octoprint_files(server) -> list[str]:
    r = requests.get(f"{server.url}/api/files/local", headers={"X-Api-Key": server.api_key}, timeout=10)
    return [f["name"] for f in r.json()["files"]]


def assert_printed_once(job: PrintJob, octoprint_server) -> None:
    assert refreshed(job).status == S.AWAITING_REMOVAL, job.reason
    assert PrintRecord.objects.filter(job=job).count() == 1
    assert AgentCommand.objects.filter(remote_name=job.remote_name, action="start").count() == 1
    assert octoprint_files(octoprint_server).count(job.remote_name) == 1


def test_a_job_prints_through_the_agent_and_the_hub_holds_no_printer_secret(
    lab, bob, via_agent, octoprint_server, tmp_path
):
    printer, agent, process, _ = via_agent
    assert printer.machine.connection_secret == ""
    job = submit(lab, bob, tmp_path, moves=300)
    assert refreshed(job).status in (S.PRINTING, S.AWAITING_REMOVAL), job.reason
    wait_status(job, (S.AWAITING_REMOVAL,), timeout=60)
    assert_printed_once(job, octoprint_server)
    agent = refreshed(agent)
    assert agent.last_seen_at is not None and agent.version.startswith("fabhub-agent")
    assert octoprint_server.api_key not in str(list(Printer.objects.values()))


def test_the_hub_killed_mid_print_comes_back_and_the_job_is_recorded_once(
    lab, bob, hub, via_agent, octoprint_server, tmp_path
):
    printer, agent, process, _ = via_agent
    job = submit(lab, bob, tmp_path, moves=2500)
    wait_status(job, (S.PRINTING,), timeout=30)
    hub.kill()
    time.sleep(8)  # the print goes on; the agent keeps its reports
    hub.start()
    wait_status(job, (S.AWAITING_REMOVAL,), timeout=90)
    assert_printed_once(job, octoprint_server)
    assert "does not answer" in process.text()  # the agent saw the outage and kept going


def test_the_agent_killed_mid_print_never_starts_the_job_twice(
    lab, bob, via_agent, octoprint_server, tmp_path
):
    printer, agent, process, _ = via_agent
    job = submit(lab, bob, tmp_path, moves=2500)
    wait_status(job, (S.PRINTING,), timeout=30)
    process.kill()
    time.sleep(2)
    process.start()
    wait_status(job, (S.AWAITING_REMOVAL,), timeout=90)
    assert_printed_once(job, octoprint_server)


def test_a_partition_marks_the_printer_offline_and_the_replay_finishes_the_job(
    lab, bob, via_agent, octoprint_server, tmp_path
):
    printer, agent, process, relay = via_agent
    job = submit(lab, bob, tmp_path, moves=2000)
    wait_status(job, (S.PRINTING,), timeout=30)
    relay.partition()
    # Longer than FABHUB_AGENT_SILENT_S: the hub calls the printer offline, the job lost.
    wait_for(
        lambda: refreshed(printer).state == "offline", timeout=30, what="the hub to call the printer offline"
    )
    wait_status(job, (S.PRINTER_LOST,), timeout=30)
    wait_for(
        lambda: "finished" in str(octoprint_status(octoprint_server)) or not octoprint_busy(octoprint_server),
        timeout=90,
        what="the print to finish while the hub cannot hear the agent",
    )
    relay.cut.clear()
    wait_status(job, (S.AWAITING_REMOVAL,), timeout=90)
    assert_printed_once(job, octoprint_server)


def octoprint_status(server) -> dict:
    return requests.get(f"{server.url}/api/job", headers={"X-Api-Key": server.api_key}, timeout=10).json()


def octoprint_busy(server) -> bool:
    return octoprint_status(server).get("state") in ("Printing", "Starting", "Finishing", "Pausing", "Paused")


def test_a_revoked_agent_stops_acting(lab, alice, bob, via_agent, tmp_path):
    printer, agent, process, _ = via_agent
    agents.agent_revoke(agent=agent, actor=alice)
    seen = refreshed(agent).last_seen_at
    time.sleep(3)
    assert refreshed(agent).last_seen_at == seen  # every sync since was refused
    assert "401" in process.text()
    job = submit(lab, bob, tmp_path, moves=100)
    assert refreshed(job).status == S.QUEUED  # no printer takes it
    assert not AgentCommand.objects.filter(agent=agent, status__in=AgentCommand.OPEN).exists()
    assert LabAgent.objects.get(pk=agent.pk).revoked_at is not None
