"""Printer drivers: one adapter per printer protocol, all behind `PrinterDriver`."""

from __future__ import annotations

from typing import Any

from machines.drivers.base import PrinterDriver, PrinterError, PrinterState, PrinterStatus, Temperature

__all__ = [
    "PrinterDriver",
    "PrinterError",
    "PrinterState",
    "PrinterStatus",
    "Temperature",
    "driver_for",
]


def driver_for(connection: dict[str, Any] | None) -> PrinterDriver:
    """The driver for a machine's decrypted connection settings (None: no connection).

    The settings are what `machines.services.machine_connection()` returns, e.g.
    `{"driver": "octoprint", "url": ..., "api_key": ...}`.
    """
    if not connection:
        from machines.drivers.manual import ManualDriver

        return ManualDriver()
    kind = connection.get("driver", "octoprint")
    if kind == "octoprint":
        from machines.drivers.octoprint import OctoPrintDriver

        return OctoPrintDriver(
            connection["url"],
            connection["api_key"],
            port=connection.get("port"),
            baudrate=connection.get("baudrate"),
        )
    raise PrinterError(f"no driver for printers of kind {kind!r}", retryable=False)
