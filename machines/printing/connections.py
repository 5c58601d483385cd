"""Which driver drives a machine: the hub's glue between stored connection settings and
the Django-free driver modules of `machines.printing.drivers`.

Every driver the hub builds gets a `hub.outbound.GuardedSession`, so it connects only
where the operator's address policy allows; the lab agent builds the same drivers with
a plain session for its own LAN.
"""

from __future__ import annotations

from typing import Any

from hub.outbound import GuardedSession
from machines.models import Machine, Printer
from machines.printing.agents import AgentDriver
from machines.printing.drivers import PrinterDriver, PrinterError, PrinterState, PrinterStatus
from machines.printing.drivers.manual import ManualDriver
from machines.printing.drivers.moonraker import MoonrakerDriver
from machines.printing.drivers.octoprint import OctoPrintDriver
from machines.printing.drivers.prusalink import PrusaLinkDriver
from machines.services import machine_connection

DRIVER_TIMEOUT = (3.05, 10.0)


def driver_for(connection: dict[str, Any] | None) -> PrinterDriver:
    """The driver for a machine's decrypted connection settings (None: no connection).

    The settings are what `machines.services.machine_connection()` returns, e.g.
    `{"driver": "octoprint", "url": ..., "api_key": ...}`.
    """
    if not connection:
        return ManualDriver()
    kind = connection.get("driver", "octoprint")
    session = GuardedSession(timeout=DRIVER_TIMEOUT)
    if kind == "octoprint":
        return OctoPrintDriver(
            connection["url"],
            connection["api_key"],
            port=connection.get("port"),
            baudrate=connection.get("baudrate"),
            session=session,
        )
    if kind == "moonraker":
        return MoonrakerDriver(connection["url"], connection.get("api_key") or None, session=session)
    if kind == "prusalink":
        return PrusaLinkDriver(
            connection["url"], connection["api_key"], username=connection.get("username"), session=session
        )
    raise PrinterError(f"no driver for printers of kind {kind!r}", retryable=False)


def driver_for_machine(machine: Machine, *, printer: Printer | None = None) -> PrinterDriver:
    """The machine's driver: through its lab agent if it has one; else OctoPrint (or
    another protocol) from its encrypted connection settings; without any, the manual
    driver carrying the operator's last record. `printer`: the machine's Printer row, if
    the caller has just read it."""
    if machine.agent_id is not None:
        return AgentDriver(machine)
    if printer is None:
        printer = Printer.objects.filter(pk=machine.pk).first()
    if not machine.has_connection:
        return ManualDriver(recorded=_recorded_status(printer) if printer else None)
    settings_ = machine_connection(machine)
    if settings_ is None:
        raise PrinterError(
            f"{machine.name}'s connection settings can no longer be read: a manager must enter them again",
            retryable=False,
        )
    if printer is not None:
        settings_ = {**settings_, "port": printer.serial_port or None, "baudrate": printer.baudrate}
    return driver_for(settings_)


def _recorded_status(printer: Printer) -> PrinterStatus:
    try:
        state = PrinterState(printer.state)
    except ValueError:
        state = PrinterState.UNKNOWN
    return PrinterStatus(
        state=state, progress=printer.progress, job_name=printer.job_name or None, message=printer.message
    )
