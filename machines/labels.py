"""How a lab's facts read on a page, in one place: capability names and opening hours.

Pure functions, no database: pages, the calendar grid and forms call them so that a lab
open all day reads "open 24 hours" everywhere and no page shows a raw capability key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta

# The keys labs use in a machine's `capabilities` (machines.printing.selectors reads the
# first two). A key not listed here still reads as words, never as a raw key.
CAPABILITY_LABELS = {
    "materials": "Materials",
    "nozzle_diameters_mm": "Nozzle diameters (mm)",
    "max_power_w": "Laser power (W)",
    "spindle_rpm": "Spindle speed (rpm)",
    "bed_temperature_c": "Bed temperature (°C)",
    "colours": "Colours",
    "colors": "Colours",
}
UNIT_SUFFIXES = {"mm": "mm", "cm": "cm", "w": "W", "c": "°C", "rpm": "rpm", "kg": "kg", "g": "g", "s": "s"}

OPEN_ALL_DAY = "open 24 hours"
CLOSED = "closed"
MIDNIGHT = time(0)


def capability_label(key: str) -> str:
    """`nozzle_diameters_mm` → "Nozzle diameters (mm)"; unknown keys become words."""
    if key in CAPABILITY_LABELS:
        return CAPABILITY_LABELS[key]
    words = [w for w in key.replace("-", "_").split("_") if w]
    unit = UNIT_SUFFIXES.get(words[-1].lower()) if len(words) > 1 else None
    if unit:
        words = words[:-1]
    text = " ".join(words).capitalize() or key
    return f"{text} ({unit})" if unit else text


def capability_value(value: object) -> str:
    """A capability's value as text: lists joined with commas, booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(capability_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{capability_label(str(k))}: {capability_value(v)}" for k, v in value.items())
    return str(value)


def capabilities(values: dict | None) -> list[tuple[str, str]]:
    """A machine's capabilities as (label, text) pairs, in the order they were given."""
    return [(capability_label(str(k)), capability_value(v)) for k, v in (values or {}).items()]


def clock(at: time, *, closing: bool = False) -> str:
    """A wall-clock time as HH:MM; a closing time of midnight reads 24:00."""
    if closing and at == MIDNIGHT:
        return "24:00"
    return f"{at:%H:%M}"


def hours_text(spans: Iterable[tuple[time, time]]) -> str:
    """One day's opening spans (closes 00:00 = midnight) as one wording used everywhere:
    "closed", "open 24 hours", or "09:00–12:00, 14:00–18:00"."""
    spans = sorted(spans)
    if not spans:
        return CLOSED
    if spans == [(MIDNIGHT, MIDNIGHT)]:
        return OPEN_ALL_DAY
    return ", ".join(f"{clock(opens)}–{clock(closes, closing=True)}" for opens, closes in spans)


def span_text(start: datetime, end: datetime) -> str:
    """A stretch of one day as HH:MM–HH:MM in the zone of its datetimes; an end at the next
    midnight reads 24:00, and a whole day "all day" (never 00:00–00:00)."""
    to_midnight = end.time() == MIDNIGHT and end.date() > start.date()
    if to_midnight and start.time() == MIDNIGHT and end.date() == start.date() + timedelta(days=1):
        return "all day"
    return f"{start:%H:%M}–{'24:00' if to_midnight else f'{end:%H:%M}'}"
