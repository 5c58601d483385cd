"""The agent program on its own (fabhub_agent): its configuration, its durable state, a
restart in the middle of a command, and a hostile hub — oversized, malformed or lying
answers, downloads from elsewhere, file names that are paths. No Django is needed by the
agent; these tests talk to a small stand-in hub on loopback."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fabhub_agent.config import AgentConfig, ConfigError, PrinterConfig, load
from fabhub_agent.hub import HubClient, HubRefused, HubUnreachable, check_hub_url
from fabhub_agent.runner import Agent
from fabhub_agent.simulated import SimulatedPrinter
from fabhub_agent.state import AgentState

ROOT = Path(__file__).resolve().parents[2]
COMMAND_ID = "0b7c5d2e-6f1a-4a8b-9c3d-2e1f0a9b8c7d"
GCODE = b"G28\nG1 X10 Y10\n"


class HostileHub:
    """A loopback HTTP server answering each path with what the test sets."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.posts: list[dict] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                status, body, headers = hub.answers.get(self.path, (404, b"{}", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hub.posts.append(json.loads(self.rfile.read(length) or b"{}"))
                self._answer()

            def do_GET(self) -> None:
                self._answer()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sync_answer(
        self, commands: list, *, accepted: int = 0, raw: bytes | None = None, status: int = 200
    ) -> None:
        body = (
            raw
            if raw is not None
            else json.dumps(
                {"accepted_through": accepted, "poll_seconds": 1, "commands": commands, "printers": [7]}
            ).encode()
        )
        self.answers["/api/agent/v1/sync"] = (status, body, {"Content-Type": "application/json"})

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hub():
    server = HostileHub()
    yield server
    server.close()


@pytest.fixture
def printer():
    return SimulatedPrinter(print_seconds=60)


def make_agent(hub: HostileHub, tmp_path: Path, printer: SimulatedPrinter) -> Agent:
    config = AgentConfig(
        hub_url=hub.url, token="fha_test", state_dir=tmp_path / "state",
        printers=(PrinterConfig(id=7, protocol="simulated"),),
    )  # fmt: skip
    return Agent(config, drivers={7: printer})


def start_command(
    *, url: str | None = None, sha256: str | None = None, size: int | None = None, name="fabhub-a.gcode"
):
    return {
        "id": COMMAND_ID,
        "printer": 7,
        "action": "start",
        "job": {
            "remote_name": name,
            "sha256": sha256 or hashlib.sha256(GCODE).hexdigest(),
            "size": len(GCODE) if size is None else size,
            "url": url or f"/api/agent/v1/commands/{COMMAND_ID}/gcode",
        },
    }


def answers(hub: HostileHub) -> list[dict]:
    return [r for post in hub.posts for r in post["reports"] if r["type"] == "command"]


# -- configuration ----------------------------------------------------------------------


def test_the_configuration_keeps_printer_secrets_out_of_sight(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(
        '[hub]\nurl = "https://hub.example.org"\ntoken_file = "%s"\n\n'
        '[[printer]]\nid = 3\nprotocol = "octoprint"\nurl = "http://192.168.1.40"\napi_key_env = "MK4_KEY"\n'
        % (tmp_path / "token")
    )
    (tmp_path / "token").write_text("fha_secret\n")
    config = load(path, {"MK4_KEY": "printer-key"})
    assert config.token == "fha_secret" and config.printers[0].api_key == "printer-key"
    assert "printer-key" not in repr(config) and "fha_secret" not in repr(config)
    # The environment wins over the file.
    assert load(path, {"FABHUB_AGENT_HUB_URL": "https://other.example"}).hub_url == "https://other.example"
    with pytest.raises(ConfigError, match="protocol"):
        path.write_text(
            '[hub]\nurl = "https://h"\ntoken = "t"\n[[printer]]\nid = 1\nprotocol = "telnet"\nurl = "x"\n'
        )
        load(path, {})
    with pytest.raises(ConfigError, match="required"):
        load(None, {})


def test_the_hub_is_reached_over_https_or_on_this_machine_only():
    assert check_hub_url("https://hub.example.org/") == "https://hub.example.org"
    assert check_hub_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    for url in ("http://hub.example.org", "ftp://hub", "http://192.168.1.2", "hub.example.org"):
        with pytest.raises(ValueError):
            check_hub_url(url)


def test_the_agent_needs_no_django():
    code = (
        "import sys, fabhub_agent.runner, fabhub_agent.__main__;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'hub', 'designs'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PATH": ""}
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- durable state ---------------------------------------------------------------------------


def test_reports_are_numbered_kept_until_acknowledged_and_survive_a_restart(tmp_path):
    state = AgentState(tmp_path / "agent.sqlite3")
    assert [state.append({"type": "status", "n": n}) for n in range(3)] == [1, 2, 3]
    state.acknowledge(1)
    state.close()
    again = AgentState(tmp_path / "agent.sqlite3")
    assert [r["seq"] for r in again.pending(10)] == [2, 3]
    assert again.append({"type": "status"}) == 4  # the counter outlives acknowledged reports


def test_a_start_interrupted_by_a_restart_is_never_run_twice(hub, tmp_path, printer):
    agent = make_agent(hub, tmp_path, printer)
    gcode = tmp_path / "x.gcode"
    gcode.write_bytes(GCODE)
    # The agent took the command and started the print, then died before noting it done.
    agent.state.command_begin(start_command())
    printer.upload_and_start(gcode, "fabhub-a.gcode")
    agent.state.close()

    restarted = make_agent(hub, tmp_path, printer)
    hub.sync_answer([start_command()], accepted=0)
    restarted.step()
    assert printer.starts == 1
    assert restarted.state.command_status(COMMAND_ID) == "done"
    reported = answers(hub)
    assert reported and reported[0]["ok"] is True and reported[0]["message"] == "already started"


def test_a_command_delivered_again_runs_once(hub, tmp_path, printer):
    agent = make_agent(hub, tmp_path, printer)
    hub.answers[f"/api/agent/v1/commands/{COMMAND_ID}/gcode"] = (200, GCODE, {})
    hub.sync_answer([start_command()])
    agent.step()
    agent.step()  # the hub has not seen the answer yet and hands the command out again
    agent.wait_idle()
    agent.step()
    assert printer.starts == 1
    assert len({r["seq"] for r in answers(hub)}) == 1


# -- a hostile hub -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * (2 * 1024 * 1024),  # too big
        b"not json",
        b"[]",
        b'{"accepted_through": -1, "poll_seconds": 1, "commands": []}',
        b'{"accepted_through": 0, "poll_seconds": 0.0001, "commands": []}',
        b'{"accepted_through": 0, "poll_seconds": 1, "commands": [{"id": "../../etc", "printer": 7, "action": "start"}]}',
        b'{"accepted_through": 0, "poll_seconds": 1, "commands": [{"id": "%s", "printer": 7, "action": "format"}]}'
        % COMMAND_ID.encode(),
    ],
)
def test_a_malformed_or_oversized_answer_is_refused_and_nothing_is_lost(hub, tmp_path, printer, raw):
    agent = make_agent(hub, tmp_path, printer)
    hub.sync_answer([], raw=raw)
    wait = agent.step()
    assert wait > 1  # backs off
    assert agent.state.pending_count() >= 1  # its reports are kept for the next try
    assert printer.starts == 0


def test_an_unreachable_hub_keeps_the_reports_and_backs_off(tmp_path, printer):
    config = AgentConfig(
        hub_url="http://127.0.0.1:9", token="fha_x", state_dir=tmp_path / "s",
        printers=(PrinterConfig(id=7, protocol="simulated"),),
    )  # fmt: skip
    agent = Agent(config, drivers={7: printer})
    waits = [agent.step() for _ in range(3)]
    assert waits == sorted(waits) and waits[-1] > waits[0]
    assert agent.state.pending_count() == 1  # one status, not re-sent while unchanged


@pytest.mark.parametrize(
    "command, expected",
    [
        (start_command(sha256="0" * 64), "does not match"),
        (start_command(size=len(GCODE) - 3), "longer than"),
        (start_command(size=10**12), "at most"),
        (start_command(url="http://192.168.1.1/steal"), "not the hub's G-code path"),
        (start_command(url="/api/agent/v1/../../admin"), "not the hub's G-code path"),
        (start_command(name="../../etc/passwd.gcode"), "plain .gcode name"),
        (start_command(name="fabhub-a.sh"), "plain .gcode name"),
        ({"id": COMMAND_ID, "printer": 99, "action": "pause"}, "not configured"),
    ],
)
def test_a_lying_command_is_refused_and_answered_as_failed(hub, tmp_path, printer, command, expected):
    agent = make_agent(hub, tmp_path, printer)
    hub.answers[f"/api/agent/v1/commands/{COMMAND_ID}/gcode"] = (200, GCODE, {})
    hub.sync_answer([command])
    agent.step()
    agent.wait_idle()
    agent.step()  # send the answer
    assert printer.starts == 0
    (answer,) = answers(hub)[:1]
    assert answer["ok"] is False and expected in answer["message"]
    assert not list((tmp_path / "state" / "downloads").iterdir())  # nothing left behind


def test_the_client_refuses_redirects_and_reads_no_further_than_declared(hub, tmp_path):
    client = HubClient(hub.url, "fha_x")
    hub.answers["/api/agent/v1/sync"] = (302, b"", {"Location": "http://192.168.1.1/"})
    with pytest.raises(HubRefused):
        client.sync([], agent="t")
    hub.answers["/api/agent/v1/sync"] = (503, b"down", {})
    with pytest.raises(HubUnreachable):
        client.sync([], agent="t")
    path = f"/api/agent/v1/commands/{COMMAND_ID}/gcode"
    hub.answers[path] = (200, GCODE * 1000, {})
    with pytest.raises(HubRefused, match="longer"):
        client.download(path, sha256="a" * 64, size=len(GCODE), max_bytes=10**6, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_start_that_ended_at_the_printer_is_not_printed_again(hub, tmp_path, printer):
    agent = make_agent(hub, tmp_path, printer)
    gcode = tmp_path / "x.gcode"
    gcode.write_bytes(GCODE)
    agent.state.command_begin(start_command())
    printer.upload_and_start(gcode, "fabhub-a.gcode")
    printer.cancel()  # stopped at the printer while the agent was down
    agent.state.close()
    restarted = make_agent(hub, tmp_path, printer)
    hub.sync_answer([])
    restarted.step()
    assert printer.starts == 1
    (answer,) = answers(hub)
    assert answer["ok"] is False and "not started again" in answer["message"]


def test_an_unexpected_failure_is_answered_not_left_running(hub, tmp_path, printer, monkeypatch):
    agent = make_agent(hub, tmp_path, printer)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(printer, "pause", disk_full)
    hub.sync_answer([{"id": COMMAND_ID, "printer": 7, "action": "pause"}])
    agent.step()
    agent.wait_idle()
    agent.step()
    (answer,) = answers(hub)
    assert answer["ok"] is False and answer["retryable"] is True and "No space" in answer["message"]
    assert agent.state.command_status(COMMAND_ID) == "done"


def test_readings_the_hub_would_refuse_are_cleaned_before_they_are_kept(hub, tmp_path):
    from fabhub_agent.runner import status_report
    from machines.printing.drivers.base import PrinterState, PrinterStatus, Temperature

    report = status_report(
        7,
        PrinterStatus(
            state=PrinterState.PRINTING, progress=100.0000001,
            temperatures={"tool0": Temperature(actual=float("nan"), target=9999.0), "bed": Temperature(60.0, 60.0)},
        ),
        1.0,
    )  # fmt: skip
    assert report["progress"] == 100.0
    assert report["temperatures"] == {
        "tool0": {"actual": None, "target": None},
        "bed": {"actual": 60.0, "target": 60.0},
    }


def test_every_sync_says_who_the_agent_is_and_what_it_holds(hub, tmp_path, printer):
    agent = make_agent(hub, tmp_path, printer)
    hub.sync_answer([], accepted=0)
    agent.step()
    post = hub.posts[-1]
    assert post["instance"] == agent.state.instance and len(post["instance"]) == 32
    assert post["first_held"] == 1 and post["more"] is False
    assert make_agent(hub, tmp_path / "other", printer).state.instance != agent.state.instance
