"""What a G-code file says about itself: estimated time, filament, and where it moves.

Pure functions over a file, no Django. Slicers write their estimates as comments
(PrusaSlicer and its forks in the footer, Cura in the header); a file without them gets
a simple parse: straight moves at their programmed feed rate, without acceleration, so
it underestimates real printers by a few tens of percent. The parse also gives the
extents of the extruding moves, for the "does it fit this printer" check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 64 * 1024
# PrusaSlicer's footer (estimates, then ~300 lines of configuration) is ~20 KB.
TAIL_BYTES = 256 * 1024

_DURATION_PART = re.compile(r"(\d{1,9})\s*([dhms])")
_PRUSA_TIME = re.compile(r"^;\s*estimated printing time(?: \(normal mode\))?\s*=\s*(.+)$", re.M)
_PRUSA_FILAMENT_MM = re.compile(r"^;\s*filament used \[mm\]\s*=\s*([\d.,\s]+)$", re.M)
_PRUSA_FILAMENT_G = re.compile(r"^;\s*(?:total )?filament used \[g\]\s*=\s*([\d.,\s]+)$", re.M)
_CURA_TIME = re.compile(r"^;TIME:(\d+(?:\.\d+)?)\s*$", re.M)
_CURA_FILAMENT_M = re.compile(r"^;Filament used:\s*([\d.]+)m", re.M)
# At most 15 digits either side of the point: a float of that stays finite whatever the
# file holds (a number of 400 digits would be infinite and poison every sum after it).
_WORD = re.compile(r"([A-Za-z])\s*([-+]?(?:\d{1,15}\.?\d{0,15}|\.\d{1,15}))")

# Estimates are stored in 32-bit columns and shown to people: ten years of printing is
# already absurd, so a figure beyond these is reported as these.
MAX_ESTIMATE_SECONDS = 10 * 365 * 86400
MAX_FILAMENT_MM = 1e9  # a thousand kilometres
MAX_FILAMENT_G = 1e9


@dataclass(frozen=True)
class GcodeInfo:
    """`estimate_source`: "metadata" (the slicer's own comment) or "parsed" (our simple parse)."""

    estimated_seconds: int | None
    filament_mm: float | None
    filament_g: float | None
    estimate_source: str
    # Extents of the extruding moves (all moves if none extrude), or None if nothing moved.
    low: tuple[float, float, float] | None = None
    high: tuple[float, float, float] | None = None


def parse_duration(text: str) -> int | None:
    """'1d 2h 3m 4s' (PrusaSlicer's format) → seconds; None if nothing in it is a duration."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return min(sum(int(value) * units[unit] for value, unit in parts), MAX_ESTIMATE_SECONDS)


def _sum_numbers(text: str) -> float | None:
    """'217.21, 0.00' (one figure per extruder) → 217.21."""
    try:
        values = [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:  # "1.2.3": not a figure
        return None
    return sum(values) if values else None


def _bounded(value: float | None, limit: float) -> float | None:
    """`value`, or `limit` if it is beyond it (or not finite: a float of hundreds of digits)."""
    if value is None:
        return None
    return value if math.isfinite(value) and value <= limit else limit


def metadata(text: str) -> tuple[int | None, float | None, float | None]:
    """(seconds, filament mm, filament g) from slicer comments in `text`, each None if absent."""
    seconds = filament_mm = filament_g = None
    if match := _PRUSA_TIME.search(text):
        seconds = parse_duration(match.group(1))
    elif match := _CURA_TIME.search(text):
        seconds = round(min(float(match.group(1)), MAX_ESTIMATE_SECONDS))  # min(inf, …) is finite
    if match := _PRUSA_FILAMENT_MM.search(text):
        filament_mm = _bounded(_sum_numbers(match.group(1)), MAX_FILAMENT_MM)
    elif match := _CURA_FILAMENT_M.search(text):
        metres = _sum_numbers(match.group(1))
        filament_mm = _bounded(metres * 1000, MAX_FILAMENT_MM) if metres is not None else None
    if match := _PRUSA_FILAMENT_G.search(text):
        # PrusaSlicer writes 0.00 without a density.
        filament_g = _bounded(_sum_numbers(match.group(1)), MAX_FILAMENT_G) or None
    return seconds, filament_mm, filament_g


def _ends(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        if size <= HEAD_BYTES + TAIL_BYTES:
            return (head + f.read()).decode("utf-8", "replace")
        f.seek(size - TAIL_BYTES)
        return (head + b"\n" + f.read()).decode("utf-8", "replace")


def read_gcode(path: Path) -> GcodeInfo:
    """Estimates from the file's own metadata where it has them, else from a simple parse."""
    seconds, filament_mm, filament_g = metadata(_ends(path))
    parsed = parse_moves(path)
    if seconds is None:
        return GcodeInfo(
            estimated_seconds=parsed.estimated_seconds,
            filament_mm=filament_mm or parsed.filament_mm,
            filament_g=filament_g,
            estimate_source="parsed",
            low=parsed.low,
            high=parsed.high,
        )
    return GcodeInfo(
        estimated_seconds=seconds,
        filament_mm=filament_mm,
        filament_g=filament_g,
        estimate_source="metadata",
        low=parsed.low,
        high=parsed.high,
    )


def read_gcode_comments(path: Path) -> GcodeInfo:
    """The slicer's own figures only (its comments in the file's first and last kilobytes),
    without walking the moves: a bounded read whatever the file's size. None where the
    file gives none."""
    seconds, filament_mm, filament_g = metadata(_ends(path))
    return GcodeInfo(
        estimated_seconds=seconds, filament_mm=filament_mm, filament_g=filament_g, estimate_source="metadata"
    )


def parse_moves(path: Path) -> GcodeInfo:
    """Walk the moves: time at the programmed feed rate, filament pushed, extents.

    Understands G0/G1 (and G2/G3 as straight lines), G4 dwells, G20/G21 units, G90/G91
    and M82/M83 (absolute or relative axes and extruder), G92 resets.
    """
    position = [0.0, 0.0, 0.0, 0.0]  # X Y Z E
    absolute, absolute_e = True, True
    scale = 1.0  # mm per unit
    feed = 1500.0 / 60  # mm/s until the file sets one
    seconds = 0.0
    filament = 0.0
    extruding_low = [math.inf] * 3
    extruding_high = [-math.inf] * 3
    any_low = [math.inf] * 3
    any_high = [-math.inf] * 3
    with path.open("rb") as f:
        for raw in f:
            line = raw.split(b";", 1)[0].strip()
            if not line:
                continue
            words = {k.upper(): float(v) for k, v in _WORD.findall(line.decode("ascii", "replace"))}
            g = words.get("G")
            m = words.get("M")
            if g in (0, 1, 2, 3):
                if "F" in words and words["F"] > 0:
                    feed = words["F"] * scale / 60
                target = list(position)
                for i, axis in enumerate("XYZ"):
                    if axis in words:
                        value = words[axis] * scale
                        target[i] = value if absolute else position[i] + value
                if "E" in words:
                    value = words["E"] * scale
                    target[3] = value if absolute_e else position[3] + value
                distance = math.dist(position[:3], target[:3])
                pushed = target[3] - position[3]
                length = distance or abs(pushed)
                if length and feed > 0:
                    seconds += length / feed
                if pushed > 0:
                    filament += pushed
                if distance:
                    for i in range(3):
                        any_low[i] = min(any_low[i], target[i])
                        any_high[i] = max(any_high[i], target[i])
                        if pushed > 0:
                            extruding_low[i] = min(extruding_low[i], position[i], target[i])
                            extruding_high[i] = max(extruding_high[i], position[i], target[i])
                position = target
            elif g == 4:
                seconds += words.get("S", 0.0) + words.get("P", 0.0) / 1000
            elif g == 20:
                scale = 25.4
            elif g == 21:
                scale = 1.0
            elif g == 90:
                absolute = absolute_e = True
            elif g == 91:
                absolute = absolute_e = False
            elif g == 92:
                for i, axis in enumerate("XYZE"):
                    if axis in words:
                        position[i] = words[axis] * scale
            elif m == 82:
                absolute_e = True
            elif m == 83:
                absolute_e = False
    low, high = (extruding_low, extruding_high) if extruding_high[0] > -math.inf else (any_low, any_high)
    placed = high[0] > -math.inf
    return GcodeInfo(
        estimated_seconds=round(min(seconds, MAX_ESTIMATE_SECONDS)),
        filament_mm=round(min(filament, MAX_FILAMENT_MM), 2) if filament else None,
        filament_g=None,
        estimate_source="parsed",
        low=(low[0], low[1], low[2]) if placed else None,
        high=(high[0], high[1], high[2]) if placed else None,
    )
