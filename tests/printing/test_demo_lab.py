"""`manage.py demo_lab` makes the demo lab once and points its printer at the OctoPrint
that `make run` started, on every run."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from machines import demo, services
from machines.models import Lab, Machine, Printer
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
