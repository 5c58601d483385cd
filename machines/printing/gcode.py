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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

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


def _search(pattern: re.Pattern[str], words: str, text: str) -> re.Match[str] | None:
    """`pattern.search(text)`, started near where `words` (which every match holds) first
    appear: a line-anchored search through the whole text costs ~1 ms per 250 KB, and a
    file has one slicer's comments, or none.

    Only a match holding that first appearance can begin before its line, as the `\\s*`
    after `^;` crosses line ends (";\\n estimated printing time = 1h" is a match); it
    begins with the last semicolon at or before the words (no other can be between), so
    the search starts on that semicolon's line."""
    at = text.find(words)
    if at < 0:
        return None
    semicolon = text.rfind(";", 0, at + 1)
    return pattern.search(text, text.rfind("\n", 0, semicolon if semicolon >= 0 else at) + 1)


def metadata(text: str) -> tuple[int | None, float | None, float | None]:
    """(seconds, filament mm, filament g) from slicer comments in `text`, each None if absent."""
    seconds = filament_mm = filament_g = None
    if match := _search(_PRUSA_TIME, "estimated printing time", text):
        seconds = parse_duration(match.group(1))
    elif match := _search(_CURA_TIME, ";TIME:", text):
        seconds = round(min(float(match.group(1)), MAX_ESTIMATE_SECONDS))  # min(inf, …) is finite
    if match := _search(_PRUSA_FILAMENT_MM, "filament used [mm]", text):
        filament_mm = _bounded(_sum_numbers(match.group(1)), MAX_FILAMENT_MM)
    elif match := _search(_CURA_FILAMENT_M, ";Filament used:", text):
        metres = _sum_numbers(match.group(1))
        filament_mm = _bounded(metres * 1000, MAX_FILAMENT_MM) if metres is not None else None
    if match := _search(_PRUSA_FILAMENT_G, "filament used [g]", text):
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


# The walk reads the file in blocks of whole lines, under 2 * BLOCK_BYTES and at most
# BLOCK_LINES lines: its numpy arrays take up to ~75 bytes per byte of a block (lines all
# words: 19 MB for "X1" * 125,000 a line) and ~400 per line holding a word, so a file of
# any size is walked in under ~20 MB. A line longer than a block is walked by the line
# loop and held whole without its comment, as the loop held it (~3.3 times its bytes at
# the peak: 26 MB for a line of 8 MB). Smaller blocks are no slower (the 66 kB file is
# one block; 1.3 MB of PrusaSlicer output 43 -> 33 ms with 1 MiB -> 128 KiB).
BLOCK_BYTES = 128 * 1024
BLOCK_LINES = 8 * 1024
DEFAULT_FEED = 1500.0 / 60  # mm/s until the file sets one

# The words `MoveWalk.block` reads, and the bytes twin of `_WORD`'s parts: the same
# numbers, with the whitespace a str pattern's \s finds on a line of ASCII text
# (\x1c-\x1f included; a byte beyond ASCII decodes to U+FFFD: no space, letter or digit).
_LETTERS = b"GMXYZEFSP"
_SPACE = rb"[\t\x0b\x0c\r\x1c-\x1f ]"
_NUMBER = rb"[-+]?(?:\d{1,15}\.?\d{0,15}|\.\d{1,15})"
_COMMENT = re.compile(rb";[^\n]*")
_SPACED = re.compile(rb"([A-Z])" + _SPACE + rb"+(?=[-+]?\.?\d)")
_UNSIGNED = re.compile(_NUMBER.removeprefix(rb"[-+]?"))
# Every power of ten up to 10**22 is exactly a double (float() of the integer).
_POW10 = np.array([float(10**k) for k in range(23)])
# The row of each of _LETTERS by byte; len(_LETTERS) for any other byte.
_LETTER_ROW = np.full(256, len(_LETTERS), dtype=np.uint8)
_LETTER_ROW[list(_LETTERS)] = np.arange(len(_LETTERS))


def _in_range(codes: np.ndarray, low: bytes, high: bytes) -> np.ndarray:
    """Whether each byte is within low..high (one subtraction that wraps below low: far
    cheaper than a lookup table indexed by the bytes)."""
    return (codes - np.uint8(low[0])) <= high[0] - low[0]


def _is_space(codes: np.ndarray) -> np.ndarray:
    """_SPACE, byte by byte: a space, \\t to \\r but \\n, or \\x1c to \\x1f."""
    return (
        (codes == ord(" "))
        | (_in_range(codes, b"\t", b"\r") & (codes != ord("\n")))
        | _in_range(codes, b"\x1c", b"\x1f")
    )


def _numbers(text: bytes, codes: np.ndarray, words: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """The number after each word's letter (`words`: the letters' positions in `text`;
    `codes`: its bytes and three zeros; `digit`: which are digits), as float() reads what
    `_NUMBER` matches there.

    A number of at most 15 digits and one point is the whole run of digits and points
    after its sign, and its digits make an integer below 2**53: that integer, an exact
    double, divided by the exact power of ten of its decimals is the correctly rounded
    value, as float() rounds it (Clinger's fast path). A longer number, or a run with two
    points, is matched and read on its own (hostile files, not slicers)."""
    negative = codes[words + 1] == ord("-")
    start = words + 1 + (negative | (codes[words + 1] == ord("+")))
    stops = np.flatnonzero(~(digit | (codes == ord("."))))
    end = stops[np.searchsorted(stops, start)]
    points_at = np.flatnonzero(codes == ord("."))
    first_point = np.searchsorted(points_at, start)
    points = np.searchsorted(points_at, end) - first_point
    length = end - start
    plain = (points <= 1) & (length - points <= 15)
    # Where a number has no point, -1: before every digit.
    point = np.where(points == 1, np.r_[points_at, 0][first_point], -1)
    # Every byte of the plain numbers, one number after the other.
    sizes = np.where(plain, length, 0)
    total = int(sizes.sum())
    number = np.repeat(np.arange(len(words)), sizes)
    at = np.arange(total) + np.repeat(start - (np.cumsum(sizes) - sizes), sizes)
    byte = codes[at]
    # A digit weighs the power of ten of the digits after it in its number; a point, 0.
    after = np.repeat(end - 1, sizes) - at - (at < np.repeat(point, sizes))
    weights = (byte.astype(np.float64) - 48) * (byte != ord(".")) * _POW10[after]
    significand = np.bincount(number, weights=weights, minlength=len(words))
    values = significand / _POW10[np.where(points == 1, end - point - 1, 0) * plain]
    for i in np.flatnonzero(~plain).tolist():
        values[i] = float(_UNSIGNED.match(text, int(start[i])).group())  # type: ignore[union-attr]
    return np.where(negative, -values, values)


def _carried(events: np.ndarray, values: np.ndarray, initial: float) -> np.ndarray:
    """For each line, the value of the last event at or before it (`initial` before any):
    a mode or a position carried forward, as the loop carries it in a variable."""
    last = np.where(events, np.arange(len(events)), -1)
    np.maximum.accumulate(last, out=last)
    out = np.asarray(values, dtype=np.float64)[np.maximum(last, 0)]
    out[last < 0] = initial
    return out


def _followed(
    values: np.ndarray, scale: np.ndarray, sets: np.ndarray, adds: np.ndarray, initial: float
) -> np.ndarray:
    """One axis's position after each line: `sets` put it at `values * scale`, `adds` move it
    by that much. Each run of adds is summed in order from the position before it, one
    addition after the other (np.add.accumulate does not regroup), so every position is
    the very float the loop computes."""
    ops = np.flatnonzero(sets | adds)
    at = values[ops] * scale[ops]
    relative = adds[ops]
    if relative.any():
        starts = np.flatnonzero(relative & ~np.r_[False, relative[:-1]])
        ends = np.flatnonzero(relative & ~np.r_[relative[1:], False]) + 1
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            run = at[start - 1 : end].copy() if start else np.r_[initial, at[:end]]
            at[start:end] = np.add.accumulate(run)[1:]
    events = np.zeros(len(values), dtype=bool)
    events[ops] = True
    placed = np.zeros(len(values))
    placed[ops] = at
    return _carried(events, placed, initial)


@dataclass
class MoveWalk:
    """A walk through a file's moves: time at the programmed feed rate, filament pushed,
    extents. It understands G0/G1 (and G2/G3 as straight lines), G4 dwells, G20/G21 units,
    G90/G91 and M82/M83 (absolute or relative axes and extruder), G92 resets.

    Fed one block of whole lines after another (`block`), or line by line (`lines`, the
    reference: one Python step per line). Both give the same floats to the last bit: the
    same operations in the same order (tests/printing/test_gcode_walk.py checks it on
    thousands of random files and on slicer output).
    """

    position: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # X Y Z E
    absolute: bool = True
    absolute_e: bool = True
    scale: float = 1.0  # mm per unit
    feed: float = DEFAULT_FEED  # mm/s
    seconds: float = 0.0
    filament: float = 0.0
    extruding_low: list[float] = field(default_factory=lambda: [math.inf] * 3)
    extruding_high: list[float] = field(default_factory=lambda: [-math.inf] * 3)
    any_low: list[float] = field(default_factory=lambda: [math.inf] * 3)
    any_high: list[float] = field(default_factory=lambda: [-math.inf] * 3)

    def lines(self, lines: Iterable[bytes]) -> None:
        """Walk these lines one by one."""
        position = self.position
        absolute, absolute_e, scale, feed = self.absolute, self.absolute_e, self.scale, self.feed
        seconds, filament = self.seconds, self.filament
        extruding_low, extruding_high = self.extruding_low, self.extruding_high
        any_low, any_high = self.any_low, self.any_high
        for raw in lines:
            line = raw.split(b";", 1)[0].strip()
            if not line:
                continue
            # finditer, not findall: a line of megabytes (walked here, see parse_moves) is not
            # also held as a list of its words' strings.
            words = {w[1].upper(): float(w[2]) for w in _WORD.finditer(line.decode("ascii", "replace"))}
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
                dx, dy, dz = target[0] - position[0], target[1] - position[1], target[2] - position[2]
                distance = math.sqrt(dx * dx + dy * dy + dz * dz)
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
        self.position = position
        self.absolute, self.absolute_e, self.scale, self.feed = absolute, absolute_e, scale, feed
        self.seconds, self.filament = seconds, filament

    def block(self, data: bytes) -> None:
        """Walk a block of whole lines at once: the words and their numbers found over the
        whole block with numpy (`_numbers`), the modes and positions carried forward, the
        sums made in the loop's order. Its memory grows with the block (see BLOCK_BYTES:
        1 MiB of "G1\\n" takes 160 MB), so parse_moves gives it blocks of bounded size."""
        text = _COMMENT.sub(b"", data).upper()
        # "X 10" is X10 to the word pattern: joined here, the position of every number
        # follows from its letter's.
        codes = np.frombuffer(text, dtype=np.uint8)
        spaced = np.flatnonzero(_in_range(codes[:-1], b"A", b"Z") & _is_space(codes[1:]))
        if any(_SPACED.match(text, at) for at in spaced.tolist()):
            text = _SPACED.sub(rb"\1", text)
        codes = np.frombuffer(text + b"\0\0\0", dtype=np.uint8)
        digit = _in_range(codes, b"0", b"9")
        starts_number = digit[:-1] | ((codes[:-1] == ord(".")) & digit[1:])
        # A word is a letter followed by a number: a digit, a point and a digit, or a
        # sign and either.
        signed = (codes[1:-2] == ord("+")) | (codes[1:-2] == ord("-"))
        after = starts_number[1:-1] | (signed & starts_number[2:])
        words = np.flatnonzero((_LETTER_ROW.take(codes[: len(text)]) < len(_LETTERS)) & after)
        if not len(words):
            return  # the loop skips a line without words: no G, no M
        numbers = _numbers(text, codes, words, digit)
        # Only the lines that hold a word do anything, so the tables below have a column
        # for each of those lines (`count`), not for every line of the block.
        line = np.searchsorted(np.flatnonzero(codes == ord("\n")), words)
        worded = np.cumsum(np.r_[True, line[1:] != line[:-1]]) - 1
        count = int(worded[-1]) + 1
        # One row per letter, one column per line: a letter twice on a line, the last
        # counts (the later word's index is the larger: kept by maximum).
        cell = _LETTER_ROW.take(codes[words]).astype(np.int64) * count + worded
        order = np.arange(len(words))
        taken = np.full(len(_LETTERS) * count, -1)
        taken[cell] = order
        if (taken[cell] < order).any():
            np.maximum.at(taken, cell, order)
        # Read through `taken`, -1 (no such word on the line) is the NaN put last.
        table = np.r_[numbers, np.nan][taken].reshape(len(_LETTERS), count)
        column = {chr(letter): table[row] for row, letter in enumerate(_LETTERS)}
        g, m = column["G"], column["M"]
        move = (g == 0) | (g == 1) | (g == 2) | (g == 3)
        dwell = g == 4
        inch, mm, absolute, relative, reset = g == 20, g == 21, g == 90, g == 91, g == 92
        other = ~(move | dwell | inch | mm | absolute | relative | reset)
        e_absolute, e_relative = other & (m == 82), other & (m == 83)

        scale = _carried(inch | mm, np.where(inch, 25.4, 1.0), self.scale)
        axes_absolute = _carried(absolute | relative, absolute, float(self.absolute)) == 1.0
        extruder_absolute = (
            _carried(
                absolute | relative | e_absolute | e_relative, absolute | e_absolute, float(self.absolute_e)
            )
            == 1.0
        )
        f = column["F"]
        feed = _carried(move & (f > 0), f * scale / 60, self.feed)
        after_line = []
        for i, axis in enumerate("XYZE"):
            absolute_mode = extruder_absolute if axis == "E" else axes_absolute
            present = ~np.isnan(column[axis])
            sets = (reset | (move & absolute_mode)) & present
            adds = move & ~absolute_mode & present
            after_line.append(_followed(column[axis], scale, sets=sets, adds=adds, initial=self.position[i]))
        moves = np.flatnonzero(move)
        before_line = [np.r_[self.position[i], after[:-1]] for i, after in enumerate(after_line)]
        target = [after[moves] for after in after_line]
        start = [before[moves] for before in before_line]
        dx, dy, dz = (target[i] - start[i] for i in range(3))
        distance = np.sqrt(dx * dx + dy * dy + dz * dz)
        pushed = target[3] - start[3]
        length = np.where(distance != 0, distance, np.abs(pushed))
        move_feed = feed[moves]
        timed = (length != 0) & (move_feed > 0)
        spent = np.zeros(count)
        spent[moves[timed]] = length[timed] / move_feed[timed]
        s, p = column["S"], column["P"]
        spent[dwell] = np.where(np.isnan(s), 0.0, s)[dwell] + np.where(np.isnan(p), 0.0, p)[dwell] / 1000
        # Sums in file order, one addition at a time, as the loop adds.
        self.seconds = float(np.add.accumulate(np.r_[self.seconds, spent[move | dwell]])[-1])
        self.filament = float(np.add.accumulate(np.r_[self.filament, pushed[pushed > 0]])[-1])
        moved = distance != 0
        extruding = moved & (pushed > 0)
        for i in range(3):
            if moved.any():
                self.any_low[i] = min(self.any_low[i], float(target[i][moved].min()))
                self.any_high[i] = max(self.any_high[i], float(target[i][moved].max()))
            if extruding.any():
                ends = np.r_[start[i][extruding], target[i][extruding]]
                self.extruding_low[i] = min(self.extruding_low[i], float(ends.min()))
                self.extruding_high[i] = max(self.extruding_high[i], float(ends.max()))
        self.position = [float(after[-1]) for after in after_line]
        self.scale, self.feed = float(scale[-1]), float(feed[-1])
        self.absolute, self.absolute_e = bool(axes_absolute[-1]), bool(extruder_absolute[-1])

    def info(self) -> GcodeInfo:
        """The figures of the lines walked so far."""
        low, high = (
            (self.extruding_low, self.extruding_high)
            if self.extruding_high[0] > -math.inf
            else (self.any_low, self.any_high)
        )
        placed = high[0] > -math.inf
        return GcodeInfo(
            estimated_seconds=round(min(self.seconds, MAX_ESTIMATE_SECONDS)),
            filament_mm=round(min(self.filament, MAX_FILAMENT_MM), 2) if self.filament else None,
            filament_g=None,
            estimate_source="parsed",
            low=(low[0], low[1], low[2]) if placed else None,
            high=(high[0], high[1], high[2]) if placed else None,
        )


def parse_moves(path: Path) -> GcodeInfo:
    """Walk the file's moves (`MoveWalk`): a block of whole lines at a time, and a line
    longer than a block on its own, with the line loop."""
    walk = MoveWalk()
    with path.open("rb") as f:
        for data, long_line in _blocks(f):
            if long_line:
                walk.lines([data])
            else:
                walk.block(data)
    return walk.info()


def _blocks(source: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """`source` cut for the walk: (whole lines, False), at most BLOCK_LINES of them and
    under 2 * BLOCK_BYTES bytes; or (a line longer than BLOCK_BYTES without its comment,
    True)."""
    start = b""  # the start of a line, shorter than a block, that the last chunk ended in
    while chunk := source.read(BLOCK_BYTES):
        if b"\n" not in chunk and len(start) + len(chunk) > BLOCK_BYTES:
            line, chunk = _long_line(source, start + chunk)
            yield line, True
            start = b""
        end = chunk.rfind(b"\n") + 1
        if not end:
            start += chunk
            continue
        data = start + chunk[:end]
        start = chunk[end:]
        if data.count(b"\n") <= BLOCK_LINES:
            yield data, False
            continue
        cuts = (
            np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))[BLOCK_LINES - 1 :: BLOCK_LINES]
            + 1
        )
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(data)], strict=True):
            if b > a:
                yield data[a:b], False
    if start:
        yield start, False


def _long_line(source: BinaryIO, begun: bytes) -> tuple[bytes, bytes]:
    """The line `begun` starts, read to its end: its bytes before its comment (the walk
    ignores the rest, so a line of a comment is not held however long), and the bytes
    read after it."""
    line = bytearray()
    commented = False
    chunk = begun
    while True:
        end = chunk.find(b"\n")
        if not commented:
            code = (chunk if end < 0 else chunk[:end]).split(b";", 1)
            line += code[0]
            commented = len(code) > 1
        if end >= 0 or not chunk:
            return bytes(line), chunk[end + 1 :] if end >= 0 else b""
        chunk = source.read(BLOCK_BYTES)
