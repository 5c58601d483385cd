"""Printer drivers: one adapter per printer protocol, all behind `PrinterDriver`.

This package imports neither Django nor the hub: the lab agent (`fabhub_agent`) ships it
as it is and drives a lab's printers with the very modules the hub uses. The hub's glue
(which driver a machine gets, with which HTTP session) is `machines.printing.connections`.
"""

from __future__ import annotations

from machines.printing.drivers.base import (
    Capability,
    PrinterDriver,
    PrinterError,
    PrinterState,
    PrinterStatus,
    Temperature,
)

__all__ = [
    "Capability",
    "PrinterDriver",
    "PrinterError",
    "PrinterState",
    "PrinterStatus",
    "Temperature",
]
