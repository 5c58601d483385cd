"""`manage.py demo_lab` makes the demo lab once and points its printer at the OctoPrint
that `make run` started, on every run."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from machines import demo, services
from machines.models import Lab, Machine, Printer
from machines.printing import agents
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_without_the_demo_people_it_does_nothing(capsys):
    call_command("demo_lab")
    assert "run `manage.py demo` first" in capsys.readouterr().out
    assert not Lab.objects.exists()


def test_it_makes_the_lab_once_and_updates_the_printers_connection():
    for name in ("ada", "linus", "grace"):
        UserFactory(username=name)
    lab = demo.demo_lab_create(octoprint_url="http://127.0.0.1:5050", octoprint_key="KEY1")
    again = demo.demo_lab_create(octoprint_url="http://127.0.0.1:5051", octoprint_key="KEY2")
    assert again == lab and Lab.objects.count() == 1 and Machine.objects.count() == 2
    assert sorted(demo.demo_lab_members()) == ["ada", "grace", "linus"]
    printer = Printer.objects.get()
    assert (printer.machine.slug, printer.serial_port, printer.material) == ("virtual-mk4", "VIRTUAL", "PLA")
    assert services.machine_connection(printer.machine) == {
        "driver": "octoprint",
        "url": "http://127.0.0.1:5051",
        "api_key": "KEY2",
    }
    assert "M220 S100000" in printer.slicer_profile


def test_through_an_agent_the_hub_forgets_the_printers_address_and_the_agent_gets_it(tmp_path):
    import tomllib

    for name in ("ada", "linus", "grace"):
        UserFactory(username=name)
    demo.demo_lab_create(
        octoprint_url="http://127.0.0.1:5050", octoprint_key="KEY1"
    )  # an earlier, direct run
    call_command(
        "demo_lab", octoprint_url="http://127.0.0.1:5050", octoprint_key="KEY2",
        agent_config=str(tmp_path / "agent.toml"), hub_url="http://127.0.0.1:8000",
    )  # fmt: skip
    first = tomllib.loads((tmp_path / "agent.toml").read_text())
    assert (tmp_path / "agent.toml").stat().st_mode & 0o077 == 0
    machine = Machine.objects.get(slug="virtual-mk4")
    assert machine.connection_secret == "" and machine.agent is not None
    assert first["printer"][0] == {
        "id": machine.pk, "protocol": "octoprint", "url": "http://127.0.0.1:5050", "api_key": "KEY2",
        "port": "VIRTUAL", "baudrate": 115200,
    }  # fmt: skip
    # Each run gives the same agent a fresh token; the old one stops working.
    call_command("demo_lab", octoprint_url="http://127.0.0.1:5050", octoprint_key="KEY2",
                 agent_config=str(tmp_path / "agent.toml"))  # fmt: skip
    second = tomllib.loads((tmp_path / "agent.toml").read_text())
    assert second["hub"]["token"] != first["hub"]["token"]
    assert agents.agent_for_token(first["hub"]["token"]) is None
    assert agents.agent_for_token(second["hub"]["token"]) == machine.agent
