"""The agent's printers: the hub's own driver modules, each with a plain session for the LAN."""

from __future__ import annotations

import requests

from fabhub_agent.config import PrinterConfig
from fabhub_agent.simulated import SimulatedPrinter
from machines.printing.drivers.base import PrinterDriver
from machines.printing.drivers.moonraker import MoonrakerDriver
from machines.printing.drivers.octoprint import OctoPrintDriver
from machines.printing.drivers.prusalink import PrusaLinkDriver


def driver_for(printer: PrinterConfig) -> PrinterDriver:
    # The agent sits on the printers' LAN: a plain session, not the hub's guarded client.
    session = requests.Session()
    session.trust_env = False
    if printer.protocol == "octoprint":
        return OctoPrintDriver(
            printer.url, printer.api_key, port=printer.port, baudrate=printer.baudrate, session=session
        )
    if printer.protocol == "moonraker":
        return MoonrakerDriver(printer.url, printer.api_key or None, session=session)
    if printer.protocol == "prusalink":
        return PrusaLinkDriver(printer.url, printer.api_key, username=printer.username, session=session)
    if printer.protocol == "simulated":
        return SimulatedPrinter(print_seconds=printer.print_seconds)
    raise ValueError(f"unknown protocol {printer.protocol!r}")
