"""The print queue on a Klipper printer behind a real Moonraker: driven directly by the
hub (connection settings with the `moonraker` protocol, through the guarded client) and
through a lab agent (the hub holds nothing but the printer's id)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from fabhub_agent.config import AgentConfig, PrinterConfig
from fabhub_agent.hub import check_sync_answer
from fabhub_agent.printers import driver_for
from fabhub_agent.runner import Agent
from machines.models import AgentCommand, PrintJob, PrintRecord
from machines.printing import agents, dispatch
from machines.printing import services as printing
from machines.printing.connections import driver_for_machine
from machines.printing.drivers.moonraker import MoonrakerDriver
from machines.services import machine_update
from tests.printing import moonraker_server as servers
from tests.printing.factories import gcode_upload, make_printer
from tests.printing.moonraker_server import wait_for, write_gcode

moonraker_server = servers.moonraker_server
moonraker_printer = servers.moonraker_printer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
S = PrintJob.Status


def refreshed(row):
    row.refresh_from_db()
    return row


def test_a_job_prints_on_a_moonraker_printer_driven_by_the_hub(
    lab, bob, moonraker_printer, moonraker_server, tmp_path
):
    printer = make_printer(lab, slug="voron", profile_name="klipper")
    machine = printer.machine
    machine_update(machine=machine, actor=lab.memberships.get(role="manager").user,
                   connection_url=moonraker_server.url, connection_api_key="", connection_protocol="moonraker")  # fmt: skip
    machine.refresh_from_db()
    assert isinstance(driver_for_machine(machine), MoonrakerDriver)
    assert dispatch.printer_poll(machine_id=printer.pk) == "idle"

    path = write_gcode(tmp_path / "bracket.gcode", size=40_000)
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))

    def finished():
        dispatch.printer_poll(machine_id=printer.pk)
        return refreshed(job).status == S.AWAITING_REMOVAL

    wait_for(finished, timeout=60, what="the job to print on Moonraker")
    assert PrintRecord.objects.filter(job=job).count() == 1
    assert (moonraker_server.gcodes / job.remote_name).exists()


def test_a_job_prints_on_a_moonraker_printer_through_an_agent(
    lab, alice, bob, moonraker_printer, moonraker_server, tmp_path
):
    printer = make_printer(lab, slug="voron", profile_name="klipper")
    agent_row, token = agents.agent_create(lab=lab, actor=alice, name="klipper pi")
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent_row)

    # The agent in this process, talking to the hub through Django's test client: the
    # protocol is the same; tests/printing/test_agent_end_to_end.py runs it for real.
    class ClientHub:
        base_url = "http://testserver"

        def __init__(self) -> None:
            self.client = Client()

        def sync(self, reports, *, agent, **sync_fields):
            response = self.client.post("/api/agent/v1/sync", data={"agent": agent, "reports": reports, **sync_fields},
                                        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
            assert response.status_code == 200, response.content
            return check_sync_answer(response.json())

        def download(self, path, *, sha256, size, max_bytes, directory):
            response = self.client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
            target = directory / "job.gcode"
            target.write_bytes(b"".join(response.streaming_content))
            return target

    config = AgentConfig(
        hub_url="http://127.0.0.1:1", token=token, state_dir=tmp_path / "state",
        printers=(PrinterConfig(id=printer.pk, protocol="moonraker", url=moonraker_server.url),),
    )  # fmt: skip
    agent = Agent(config, hub=ClientHub(), drivers={printer.pk: driver_for(config.printers[0])})
    agent.step()
    assert dispatch.printer_poll(machine_id=printer.pk) == "idle"

    stop = threading.Event()

    def run_agent():
        try:
            while not stop.is_set():
                agent.wake.wait(agent.step() or 0.05)
                agent.wake.clear()
        finally:
            connection.close()

    thread = threading.Thread(target=run_agent)
    thread.start()
    try:
        path = write_gcode(tmp_path / "bracket.gcode", size=40_000)
        job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))

        def finished():
            dispatch.printer_poll(machine_id=printer.pk)
            return refreshed(job).status == S.AWAITING_REMOVAL

        wait_for(finished, timeout=60, what="the job to print on Moonraker through the agent")
    finally:
        stop.set()
        thread.join()
    assert PrintRecord.objects.filter(job=job).count() == 1
    assert (
        AgentCommand.objects.filter(remote_name=job.remote_name, action="start", status="done").count() == 1
    )
    assert (moonraker_server.gcodes / job.remote_name).exists()
