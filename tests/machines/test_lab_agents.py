"""Lab agents, the hub's side, in-process: tokens through the one resolver, the sync
protocol's sequence rules, hostile agent messages, and the agent driver's command
round trip. tests/printing/test_agent_end_to_end.py runs the real agent against a live
hub and a real printer."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from hub.exceptions import ValidationError
from machines.models import AgentCommand, LabAgent, Printer, PrintJob
from machines.printing import agents, dispatch
from machines.printing.agents import AgentDriver
from machines.printing.drivers import PrinterError, PrinterState
from tests.conftest import client_for
from tests.machines.factories import make_lab
from tests.printing.factories import make_printer

SYNC = "/api/agent/v1/sync"
CS = AgentCommand.Status


@pytest.fixture
def lab(alice):
    return make_lab(alice, hours="00:00-00:00")


@pytest.fixture
def agent_and_token(lab, alice):
    return agents.agent_create(lab=lab, actor=alice, name="Pi by the printers")


@pytest.fixture
def printer(lab, alice, agent_and_token):
    printer = make_printer(lab, slug="mk4")
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent_and_token[0])
    return printer


def dispatching_job(lab, owner, printer, remote_name: str) -> PrintJob:
    """A job claimed for the printer, waiting for its start (what the send task holds)."""
    return PrintJob.objects.create(
        lab=lab, owner=owner, file_kind="gcode", path="x.gcode", status=PrintJob.Status.DISPATCHING,
        machine=printer.machine, remote_name=remote_name, dispatch_token="t",
    )  # fmt: skip


def sync(token: str, reports: list | None = None, **extra) -> tuple[int, dict]:
    response = Client().post(
        SYNC,
        data=json.dumps({"agent": "test", "reports": reports or [], **extra}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    return response.status_code, response.json()


def status(seq: int, printer_id: int, state: str = "idle", **fields) -> dict:
    return {
        "seq": seq,
        "type": "status",
        "printer": printer_id,
        "observed_at": time.time(),
        "state": state,
        "progress": fields.get("progress"),
        "job_name": fields.get("job_name"),
        "message": fields.get("message", ""),
        "temperatures": {"tool0": {"actual": 24.5, "target": 0}},
    }


# -- tokens ------------------------------------------------------------------------------


def test_the_token_is_shown_once_and_only_its_digest_is_kept(agent_and_token):
    agent, token = agent_and_token
    assert token.startswith("fha_") and len(token) > 40
    assert agent.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(list(LabAgent.objects.values()), default=str)


@pytest.mark.django_db
def test_only_a_lab_manager_creates_agents(lab, bob):
    with pytest.raises(Exception, match="managers"):
        agents.agent_create(lab=lab, actor=bob, name="mine")


def test_every_other_credential_is_refused_on_the_agent_api(alice, agent_and_token, printer):
    agent, token = agent_and_token
    personal = client_for(alice)  # a personal write token
    assert personal.post(SYNC, {"reports": []}, format="json").status_code == 401
    assert Client().post(SYNC, data="{}", content_type="application/json").status_code == 401
    assert sync("fha_" + "x" * 43)[0] == 401
    for header in (f"Token {token}", f"Basic {token}", f"Bearer {token}, Bearer fha_other"):
        response = Client().post(SYNC, data="{}", content_type="application/json", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header


def test_an_agent_token_opens_no_other_door(agent_and_token, lab):
    _, token = agent_and_token
    client = Client()
    for path in ("/api/me/", f"/api/labs/{lab.slug}/", "/api/print-jobs/"):
        assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401, path


def test_a_revoked_agent_is_refused_at_once(alice, agent_and_token, printer):
    agent, token = agent_and_token
    assert sync(token)[0] == 200
    agents.agent_revoke(agent=agent, actor=alice)
    assert sync(token)[0] == 401


# -- the sequence rules --------------------------------------------------------------------


def test_reports_apply_in_order_replays_change_nothing_and_a_gap_is_refused(agent_and_token, printer):
    agent, token = agent_and_token
    pid = printer.pk
    code, body = sync(token, [status(1, pid), status(2, pid, "printing", progress=10, job_name="a.gcode")])
    assert code == 200 and body["accepted_through"] == 2 and body["printers"] == [pid]
    assert Printer.objects.get(pk=pid).agent_report["state"] == "printing"

    # The same reports again (the agent never got the answer): 200, nothing changes.
    code, body = sync(token, [status(1, pid, "error"), status(2, pid, "error")])
    assert code == 200 and body["accepted_through"] == 2
    assert Printer.objects.get(pk=pid).agent_report["state"] == "printing"

    # A gap: report 3 is missing. Refused, with the number the hub expects.
    code, body = sync(token, [status(4, pid, "idle")])
    assert code == 409 and body["expected_seq"] == 3 and body["accepted_through"] == 2
    assert Printer.objects.get(pk=pid).agent_report["state"] == "printing"

    # Overlapping batches apply only what is new.
    code, body = sync(
        token, [status(2, pid, "error"), status(3, pid, "paused", progress=12, job_name="a.gcode")]
    )
    assert code == 200 and body["accepted_through"] == 3
    assert Printer.objects.get(pk=pid).agent_report["state"] == "paused"
    agent.refresh_from_db()
    assert agent.last_seq == 3 and agent.last_seen_at is not None


@pytest.mark.parametrize(
    "reports",
    [
        "not a list",
        ["a string"],
        [{"type": "status"}],
        [{"seq": 0, "type": "status"}],
        [{"seq": True, "type": "status"}],
        [{"seq": "1", "type": "status"}],
    ],
)
def test_a_malformed_envelope_is_refused_whole(agent_and_token, printer, reports):
    agent, token = agent_and_token
    payload = [status(1, printer.pk), *reports] if isinstance(reports, list) else reports
    code, body = sync(token, payload)
    assert code == 400 and body["error"]
    assert Printer.objects.get(pk=printer.pk).agent_report is None  # nothing applied
    agent.refresh_from_db()
    assert agent.last_seq == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "status"},
        {"type": "status", "printer": 1, "observed_at": 1, "state": "melting"},
        {"type": "status", "printer": 1, "observed_at": 1, "state": "idle", "progress": 250},
        {"type": "status", "printer": 1, "observed_at": 1, "state": "idle", "temperatures": [1]},
        {"type": "status", "printer": 1, "observed_at": 1, "state": "idle",
         "temperatures": {"tool0": {"actual": "hot"}}},
        {"type": "command", "command": "not-a-uuid", "ok": True},
        {"type": "command", "command": "00000000-0000-0000-0000-000000000000", "ok": "yes"},
        {"type": "telepathy"},
    ],
)  # fmt: skip
def test_an_unreadable_report_is_refused_and_skipped_so_the_agent_goes_on(
    agent_and_token, printer, bad, caplog
):
    agent, token = agent_and_token
    code, body = sync(token, [status(1, printer.pk), {**bad, "seq": 2}, status(3, printer.pk, "paused")])
    assert code == 200 and body["refused"] == [2] and body["accepted_through"] == 3
    assert Printer.objects.get(pk=printer.pk).agent_report["state"] == "paused"
    assert "unreadable" in caplog.text


def test_a_broken_body_is_a_clear_400(agent_and_token, printer):
    _, token = agent_and_token
    deep = b"[" * 100_000 + b"]" * 100_000
    for data, headers in ((deep, {}), (b"{}", {"CONTENT_LENGTH": "many"})):
        response = Client().generic(
            "POST", SYNC, data=data, content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}", **headers,
        )  # fmt: skip
        assert response.status_code in (400, 413), response.status_code


def test_a_report_out_of_order_within_one_sync_is_refused(agent_and_token, printer):
    _, token = agent_and_token
    code, _ = sync(token, [status(2, printer.pk), status(1, printer.pk)])
    assert code == 400


def test_too_much_is_refused(agent_and_token, printer):
    _, token = agent_and_token
    code, body = sync(token, [status(n + 1, printer.pk) for n in range(agents.MAX_REPORTS_PER_SYNC + 1)])
    assert code == 400
    response = Client().post(
        SYNC,
        data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {agent_and_token[1]}",
    )
    assert response.status_code == 413
    response = Client().post(
        SYNC,
        data=b"\xff{",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {agent_and_token[1]}",
    )
    assert response.status_code == 400


# -- hostile agents ----------------------------------------------------------------------


def test_reports_about_other_printers_and_commands_are_refused_and_logged(
    alice, bob, lab, agent_and_token, printer, caplog
):
    _, token = agent_and_token
    other_lab = make_lab(bob, slug="elsewhere", hours="00:00-00:00")
    theirs = make_printer(other_lab, slug="theirs")
    other_agent, other_token = agents.agent_create(lab=other_lab, actor=bob, name="theirs")
    agents.machine_set_agent(machine=theirs.machine, actor=bob, agent=other_agent)
    unassigned = make_printer(lab, slug="manual")
    foreign_command = AgentCommand.objects.create(agent=other_agent, machine=theirs.machine, action="pause")

    code, body = sync(
        token,
        [
            status(1, theirs.pk, "error"),
            status(2, unassigned.pk, "error"),
            {"seq": 3, "type": "command", "command": str(foreign_command.pk), "ok": False, "message": "x"},
            status(4, printer.pk, "idle"),
        ],
    )
    assert code == 200 and body["refused"] == [1, 2, 3] and body["accepted_through"] == 4
    assert Printer.objects.get(pk=theirs.pk).agent_report is None
    assert Printer.objects.get(pk=unassigned.pk).agent_report is None
    assert AgentCommand.objects.get(pk=foreign_command.pk).status == CS.PENDING
    assert "reports refused" in caplog.text
    # The other lab's agent never sees this lab's printer or commands either.
    code, body = sync(other_token)
    assert body["printers"] == [theirs.pk] and [c["id"] for c in body["commands"]] == [
        str(foreign_command.pk)
    ]


def test_printers_are_assigned_only_to_an_active_agent_of_their_own_lab(alice, bob, lab, agent_and_token):
    other_lab = make_lab(bob, slug="elsewhere", hours="00:00-00:00")
    other_agent, _ = agents.agent_create(lab=other_lab, actor=bob, name="theirs")
    mine = make_printer(lab, slug="direct", url="http://printer.lab.example/", api_key="K")
    with pytest.raises(ValidationError):
        agents.machine_set_agent(machine=mine.machine, actor=alice, agent=other_agent)
    agents.machine_set_agent(machine=mine.machine, actor=alice, agent=agent_and_token[0])
    mine.machine.refresh_from_db()
    # The hub keeps no address or key for a printer via agent.
    assert mine.machine.connection_secret == "" and mine.machine.has_connection


def test_the_gcode_goes_only_to_the_agent_of_an_open_start_command(
    alice, bob, lab, agent_and_token, printer, tmp_path
):
    from machines.printing.files import store_file

    agent, token = agent_and_token
    with (tmp_path / "x.gcode").open("wb+") as handle:
        handle.write(b"G28\nG1 X10\n")
        handle.seek(0)
        sha256, size = store_file(handle)
    job = dispatching_job(lab, alice, printer, "fabhub-x.gcode")
    command = AgentCommand.objects.create(
        agent=agent, machine=printer.machine, action="start", remote_name="fabhub-x.gcode",
        gcode_sha256=sha256, gcode_size=size,
    )  # fmt: skip
    url = f"/api/agent/v1/commands/{command.pk}/gcode"
    response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200 and response["X-Content-SHA256"] == sha256
    assert b"".join(response.streaming_content) == b"G28\nG1 X10\n"
    other_lab = make_lab(bob, slug="elsewhere", hours="00:00-00:00")
    _, other_token = agents.agent_create(lab=other_lab, actor=bob, name="theirs")
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {other_token}").status_code == 404
    assert Client().get(url).status_code == 401
    # Once the job no longer waits for this start (requeued, cancelled), no G-code.
    PrintJob.objects.filter(pk=job.pk).update(status=PrintJob.Status.QUEUED)
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404
    PrintJob.objects.filter(pk=job.pk).update(status=PrintJob.Status.DISPATCHING)
    AgentCommand.objects.filter(pk=command.pk).update(status=CS.DONE)
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404


# -- the agent driver: commands and answers ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_driver_waits_for_the_agents_answer(lab, alice, settings, tmp_path):
    agent, token = agents.agent_create(lab=lab, actor=alice, name="pi")
    printer = make_printer(lab, slug="mk4")
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    settings.FABHUB_AGENT_COMMAND_WAIT_S = 5
    assert sync(token, [status(1, printer.pk)])[0] == 200
    driver = AgentDriver(printer.machine)
    assert driver.status().state is PrinterState.IDLE

    answers = {"pause": (True, ""), "resume": (False, "the printer said no")}

    def fake_agent(stop: threading.Event) -> None:
        seq = 1
        try:
            while not stop.is_set():
                _, body = sync(token, [])
                for command in body["commands"]:
                    seq += 1
                    ok, message = answers[command["action"]]
                    report = {
                        "seq": seq,
                        "type": "command",
                        "command": command["id"],
                        "ok": ok,
                        "message": message,
                    }
                    sync(token, [report])
                time.sleep(0.05)
        finally:
            connection.close()

    stop = threading.Event()
    thread = threading.Thread(target=fake_agent, args=(stop,))
    thread.start()
    try:
        driver.pause()
        with pytest.raises(PrinterError, match="the printer said no") as refused:
            driver.resume()
        assert refused.value.retryable is False
    finally:
        stop.set()
        thread.join()
    assert list(AgentCommand.objects.values_list("action", "status")) == [
        ("pause", "done"),
        ("resume", "failed"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_command_never_picked_up_is_withdrawn_and_one_picked_up_blocks_the_status(
    lab, alice, settings, tmp_path
):
    agent, token = agents.agent_create(lab=lab, actor=alice, name="pi")
    printer = make_printer(lab, slug="mk4")
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    settings.FABHUB_AGENT_COMMAND_WAIT_S = 0.3
    settings.FABHUB_AGENT_START_WAIT_S = 0.3
    sync(token, [status(1, printer.pk)])
    driver = AgentDriver(printer.machine)
    with pytest.raises(PrinterError, match="did not pick up") as late:
        driver.cancel()
    assert late.value.retryable
    withdrawn = AgentCommand.objects.get()
    assert withdrawn.status == CS.WITHDRAWN
    assert sync(token)[1]["commands"] == []  # never delivered afterwards

    gcode = tmp_path / ("a" * 64 + ".gcode")
    gcode.write_bytes(b"G28\n")
    dispatching_job(lab, alice, printer, "fabhub-a.gcode")

    def pick_up_without_answering() -> None:
        time.sleep(0.1)
        sync(token)
        connection.close()

    picker = threading.Thread(target=pick_up_without_answering)
    picker.start()
    with pytest.raises(PrinterError, match="has not answered"):
        driver.upload_and_start(gcode, "fabhub-a.gcode")
    picker.join()
    # The agent may be starting it: until it answers, the printer's state is unknown,
    # so the queue never takes the job back.
    with pytest.raises(PrinterError, match="starting a job") as unknown:
        driver.status()
    assert unknown.value.retryable


def test_a_silent_agents_printers_are_offline_and_take_no_jobs(
    lab, alice, agent_and_token, printer, settings
):
    _, token = agent_and_token
    sync(token, [status(1, printer.pk)])
    assert dispatch.printer_poll(machine_id=printer.pk) == "idle"
    assert [p.pk for p in dispatch.idle_printers(now=timezone.now())] == [printer.pk]
    LabAgent.objects.update(
        last_seen_at=timezone.now() - timezone.timedelta(seconds=settings.FABHUB_AGENT_SILENT_S + 1)
    )
    assert dispatch.printer_poll(machine_id=printer.pk) == "offline"
    printer.refresh_from_db()
    assert printer.state == "offline" and "not been heard from" in printer.message
    assert dispatch.idle_printers(now=timezone.now()) == []


# -- what the review of the protocol found ----------------------------------------------------


def test_an_agent_that_lost_its_state_starts_its_numbering_again(agent_and_token, printer, lab, alice):
    agent, token = agent_and_token
    assert (
        sync(token, [status(n, printer.pk) for n in (1, 2, 3)], instance="pi-a")[1]["accepted_through"] == 3
    )
    delivered = AgentCommand.objects.create(agent=agent, machine=printer.machine, action="pause")
    sync(token, [], instance="pi-a")  # delivered to its former self
    # A new SD card: new state, numbering from 1. Without the instance id its reports
    # would be taken for replays and dropped.
    code, body = sync(token, [status(1, printer.pk, "paused")], instance="pi-b")
    assert code == 200 and body["accepted_through"] == 1
    assert Printer.objects.get(pk=printer.pk).agent_report["state"] == "paused"
    # What its former self took can never be answered: failed, retryable.
    delivered.refresh_from_db()
    assert delivered.status == CS.FAILED and delivered.retryable


def test_reports_the_hub_lost_are_skipped_when_the_agent_holds_nothing_earlier(agent_and_token, printer):
    _, token = agent_and_token
    sync(token, [status(1, printer.pk), status(2, printer.pk)])
    # The hub's database was restored to before report 2 was applied… simulated: the
    # agent already dropped 3-5 and now sends 6, saying it holds nothing earlier.
    code, body = sync(token, [status(6, printer.pk, "paused")], first_held=6)
    assert code == 200 and body["accepted_through"] == 6
    # Without that word from the agent, a gap is a gap.
    assert sync(token, [status(9, printer.pk)], first_held=8)[0] == 409


def test_a_job_that_ended_during_an_outage_is_found_after_the_printer_moved_on(
    lab, alice, agent_and_token, printer
):
    _, token = agent_and_token
    job = dispatching_job(lab, alice, printer, "fabhub-b.gcode")
    PrintJob.objects.filter(pk=job.pk).update(status=PrintJob.Status.PRINTING)
    replay = [
        status(1, printer.pk, "printing", progress=90, job_name="fabhub-b.gcode"),
        status(2, printer.pk, "idle", progress=100, job_name="fabhub-b.gcode"),
        status(3, printer.pk, "offline"),  # switched off and on again
        status(4, printer.pk, "idle"),
    ]
    sync(token, replay)
    seen = AgentDriver(printer.machine).status()
    assert (seen.state, seen.job_name, seen.progress) == (PrinterState.IDLE, "fabhub-b.gcode", 100)
    dispatch.printer_poll(machine_id=printer.pk)
    job.refresh_from_db()
    assert job.status == PrintJob.Status.AWAITING_REMOVAL
    assert AgentDriver(printer.machine).status().job_name is None  # reported once


def test_a_waiting_command_no_longer_wanted_is_withdrawn_not_delivered(
    lab, alice, agent_and_token, printer, settings
):
    agent, token = agent_and_token
    old = AgentCommand.objects.create(
        agent=agent, machine=printer.machine, action="pause",
        created_at=timezone.now() - timezone.timedelta(seconds=settings.FABHUB_AGENT_COMMAND_WAIT_S + 1),
    )  # fmt: skip
    orphan_start = AgentCommand.objects.create(
        agent=agent, machine=printer.machine, action="start", remote_name="fabhub-gone.gcode",
        gcode_sha256="a" * 64, gcode_size=4,
    )  # fmt: skip
    assert sync(token)[1]["commands"] == []
    assert set(AgentCommand.objects.values_list("status", flat=True)) == {CS.WITHDRAWN}
    assert old.pk and orphan_start.pk


def test_while_the_agent_catches_up_its_printers_are_not_trusted(agent_and_token, printer):
    _, token = agent_and_token
    sync(token, [status(1, printer.pk)], more=True)
    with pytest.raises(PrinterError, match="still sending") as caught:
        AgentDriver(printer.machine).status()
    assert caught.value.retryable
    assert dispatch.idle_printers(now=timezone.now()) == []
    sync(token, [status(2, printer.pk)], more=False)
    assert AgentDriver(printer.machine).status().state is PrinterState.IDLE


def test_a_revoked_agents_printers_read_offline(alice, agent_and_token, printer):
    agent, token = agent_and_token
    sync(token, [status(1, printer.pk)])
    agents.agent_revoke(agent=agent, actor=alice)
    assert dispatch.printer_poll(machine_id=printer.pk) == "offline"


def test_quiet_syncs_write_nothing(agent_and_token, printer, django_assert_max_num_queries):
    _, token = agent_and_token
    sync(token, [status(1, printer.pk)])
    with django_assert_max_num_queries(4):  # the token, the quiet check, the printers
        code, body = sync(token, [status(1, printer.pk)])
    assert code == 200 and body["accepted_through"] == 1
