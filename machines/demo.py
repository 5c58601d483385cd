"""The demo lab: a fablab whose printer really prints, on a real OctoPrint with its
Virtual Printer that `make run` starts alongside the hub (scripts/with-demo-octoprint).

`manage.py demo_lab --octoprint-url … --octoprint-key …` calls `demo_lab_create()`. It is
idempotent: the lab, its members and machines are made once, and the printer's
connection settings are written on every run (the script keeps the same port and key).
Everything goes through the services, like real use.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from django.db import transaction

from hub.exceptions import Conflict
from hub.models import User
from machines import services
from machines.models import Lab, LabAgent, LabMembership, Machine, MaterialPrice, Printer, PrintSettings
from machines.printing import agents
from machines.printing import services as printing

LAB_SLUG = "demo-fablab"
PRINTER_SLUG = "virtual-mk4"
KLIPPER_SLUG = "virtual-voron"
# The virtual printer simulates heating in real time and sleeps for a tenth of each
# move: this profile leaves heating out and multiplies the feed rate, so the demo part
# prints in seconds. A real printer's profile sets temperatures and speeds.
DEMO_PROFILE = (
    "layer_height = 0.2\nfill_density = 15%\n"
    "temperature = 0\nfirst_layer_temperature = 0\nbed_temperature = 0\nfirst_layer_bed_temperature = 0\n"
    "start_gcode = G28\\nM220 S100000 ; demo only: the virtual printer runs at full speed\nend_gcode = M84\n"
)


def demo_lab_create(*, octoprint_url: str | None = None, octoprint_key: str | None = None) -> Lab | None:
    """Make (or update) the demo lab; None if the demo people are not there yet."""
    ada = User.objects.filter(username="ada").first()
    if ada is None:
        return None
    with transaction.atomic():
        lab = Lab.objects.filter(slug=LAB_SLUG).first()
        if lab is None:
            lab = services.lab_create(
                creator=ada,
                name="Demo Fablab",
                slug=LAB_SLUG,
                timezone="Europe/Paris",
                description="A demo lab. Its **Virtual MK4** is a real OctoPrint with a virtual printer: "
                "send it a part from a design's file page (*Print at a lab*) and watch it print.",
                address="1 rue des Makers, Lyon",
            )
            Lab.objects.filter(pk=lab.pk).update(latitude=45.7578, longitude=4.832)  # Lyon
            # Prices, so "where can I make this" and the jobs show costs (docs/labs.md).
            PrintSettings.objects.update_or_create(
                lab=lab,
                defaults={"price_per_job": Decimal("0.50"), "price_per_machine_hour": Decimal("1.00")},
            )
            for material, per_gram, density in (("PLA", "0.04", "1.24"), ("PETG", "0.05", "1.27")):
                MaterialPrice.objects.create(
                    lab=lab,
                    material=material,
                    price_per_gram=Decimal(per_gram),
                    density_g_cm3=Decimal(density),
                )
            # The demo's own lab, as if the site's administrators had approved it.
            Lab.objects.filter(pk=lab.pk).update(approved_at=lab.created_at)
            lab.approved_at = lab.created_at
            services.lab_set_hours(lab=lab, actor=ada, hours=[(d, time(0), time(0)) for d in range(7)])
            for name in ("linus", "grace"):
                member = User.objects.filter(username=name).first()
                if member is not None:
                    services.membership_join(lab=lab, user=member)
            services.machine_create(
                lab=lab,
                actor=ada,
                name="Laser cutter",
                slug="laser",
                kind=Machine.Kind.LASER_CUTTER,
                model_name="60 W CO2",
                work_x_mm=600,
                work_y_mm=400,
                work_z_mm=50,
                requires_qualification=True,
            )
        machine = Machine.objects.filter(lab=lab, slug=PRINTER_SLUG).first()
        if machine is None:
            machine = services.machine_create(
                lab=lab,
                actor=ada,
                name="Virtual MK4",
                slug=PRINTER_SLUG,
                kind=Machine.Kind.FDM_PRINTER,
                model_name="OctoPrint Virtual Printer",
                work_x_mm=250,
                work_y_mm=210,
                work_z_mm=210,
                capabilities={"materials": ["PLA", "PETG"], "nozzle_diameters_mm": [0.4]},
            )
        if octoprint_url and octoprint_key:
            services.machine_update(
                machine=machine, actor=ada, connection_url=octoprint_url, connection_api_key=octoprint_key
            )
            # A fresh OctoPrint: connect it to its virtual printer at the first poll.
            Printer.objects.filter(pk=machine.pk).update(connect_tried_at=None)
        if not hasattr(machine, "printer"):
            printing.printer_configure(
                machine=machine,
                actor=ada,
                material="PLA",
                colour="black",
                nozzle_mm="0.4",
                profile_name="Demo: 0.2 mm, no heating",
                slicer_profile=DEMO_PROFILE,
                serial_port="VIRTUAL",
                baudrate=115200,
            )
    return lab


DEMO_AGENT_NAME = "Demo lab agent"


def demo_lab_agent_config(
    *, hub_url: str, octoprint_url: str, octoprint_key: str, state_dir: str, moonraker_url: str | None = None
) -> str | None:
    """Drive the demo printers through a lab agent, as a lab behind NAT would: the agent
    gets a fresh token (the old one stops working) and the printers; the hub forgets the
    OctoPrint address and key, which go into the agent's configuration returned here
    (TOML). With `moonraker_url`, a Klipper printer behind Moonraker joins the lab."""
    lab = Lab.objects.filter(slug=LAB_SLUG).first()
    ada = User.objects.filter(username="ada").first()
    machine = Machine.objects.filter(lab=lab, slug=PRINTER_SLUG).first() if lab else None
    if lab is None or ada is None or machine is None:
        return None
    agent = LabAgent.objects.filter(lab=lab, name=DEMO_AGENT_NAME, revoked_at__isnull=True).first()
    if agent is None:
        agent, token = agents.agent_create(lab=lab, actor=ada, name=DEMO_AGENT_NAME)
    else:
        token = agents.agent_rotate_token(agent=agent, actor=ada)
    klipper = _demo_klipper_printer(lab, ada) if moonraker_url else None
    for printer_machine in (machine, klipper):
        if printer_machine is not None and (
            printer_machine.agent_id != agent.pk or printer_machine.connection_secret
        ):
            try:
                agents.machine_set_agent(machine=printer_machine, actor=ada, agent=agent)
            except Conflict:
                pass  # a job of an earlier run is still on it: switch at the next run
    config = (
        "# Written by `manage.py demo_lab` for `make run`: the demo lab's agent (docs/agent.md).\n"
        f'[hub]\nurl = "{hub_url}"\ntoken = "{token}"\nstate_dir = "{state_dir}"\n\n'
        f'[[printer]]\nid = {machine.pk}\nprotocol = "octoprint"\nurl = "{octoprint_url}"\n'
        f'api_key = "{octoprint_key}"\nport = "VIRTUAL"\nbaudrate = 115200\n'
    )
    if klipper is not None:
        config += f'\n[[printer]]\nid = {klipper.pk}\nprotocol = "moonraker"\nurl = "{moonraker_url}"\n'
    return config


def _demo_klipper_printer(lab: Lab, ada: User) -> Machine:
    """The demo's Klipper printer: a real Moonraker in front of a stand-in for Klippy (the
    suite's, tests/printing/klippy_standin.py), which "prints" without hardware."""
    machine = Machine.objects.filter(lab=lab, slug=KLIPPER_SLUG).first()
    if machine is None:
        machine = services.machine_create(
            lab=lab,
            actor=ada,
            name="Virtual Voron (Klipper)",
            slug=KLIPPER_SLUG,
            kind=Machine.Kind.FDM_PRINTER,
            model_name="Moonraker + a stand-in for Klippy",
            work_x_mm=300,
            work_y_mm=300,
            work_z_mm=300,
            capabilities={"materials": ["PLA", "PETG", "ABS"], "nozzle_diameters_mm": [0.4]},
        )
    if not Printer.objects.filter(pk=machine.pk).exists():
        printing.printer_configure(
            machine=machine,
            actor=ada,
            material="PETG",
            colour="orange",
            nozzle_mm="0.4",
            profile_name="Demo: 0.2 mm, no heating",
            slicer_profile=DEMO_PROFILE,
        )
    return machine


def demo_lab_members() -> list[str]:
    lab = Lab.objects.filter(slug=LAB_SLUG).first()
    if lab is None:
        return []
    return list(
        lab.memberships.filter(status=LabMembership.Status.ACTIVE).values_list("user__username", flat=True)
    )
