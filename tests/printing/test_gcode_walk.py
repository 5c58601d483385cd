"""The walk through a G-code's moves gives the same figures read a block at a time (numpy)
as line by line (the reference loop): the same floats, compared with == (so a zero's sign
may differ, as `min` of 0.0 and -0.0 picks either), on thousands of random files mixing
every construct the walk reads, and on real slicer output."""

from __future__ import annotations

import dataclasses
import gzip
import random
from pathlib import Path

import pytest

from machines.printing import gcode
from machines.printing.gcode import MoveWalk, parse_moves

DATA = Path(__file__).parent / "data"
# Sliced by PrusaSlicer 2.5.0 from tests' 7/8 in cube (corpus trimesh-models/7_8ths_cube.stl),
# 0.3 mm layers, 10 % infill, centred on 100,100: absolute extrusion (M82, G92 E0 resets)
# and relative extrusion (M83, marlin2 flavour, "G92 E0" before each layer).
SLICED = ["prusa-cube-small.gcode.gz", "prusa-cube-rel.gcode.gz"]
FILES = 3000


def _walked_by_lines(data: bytes) -> dict:
    walk = MoveWalk()
    walk.lines(data.split(b"\n"))
    return dataclasses.asdict(walk)


def _walked_by_blocks(blocks: list[bytes]) -> dict:
    walk = MoveWalk()
    for block in blocks:
        walk.block(block)
    return dataclasses.asdict(walk)


def _number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        return f"{rng.uniform(-300, 300):.{rng.randint(0, 5)}f}"
    if kind < 0.6:
        return str(rng.randint(-5, 500))
    if kind < 0.7:  # up to 16 digits, the point anywhere: both sides of the 15-digit fast path
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
        at = rng.randint(0, len(digits))
        return rng.choice(["", "-", "+"]) + digits[:at] + rng.choice([".", ""]) + digits[at:]
    return rng.choice(
        [
            ".5",
            "-.25",
            "+3",
            "1.",
            "-0",
            "0.000001",
            "1.2.3",
            "12345678901234567",  # more digits than a word's first part takes
            "1234567890123456.5",
            "0." + "3" * 18,
            "9" * rng.randint(16, 400),
            "-" + "7" * 31,
            "- 5",
            "+.",
            "",
        ]
    )


def _word(rng: random.Random, letter: str) -> str:
    letter = letter.lower() if rng.random() < 0.1 else letter
    space = rng.choice(["", "", "", " ", "\t", "\x1c", "  "])
    return f"{letter}{space}{_number(rng)}"


def _line(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.55:
        command = rng.choice(["G1", "G1", "G0", "G01", "G2", "G3", "g1", "G 1", "G1.0", "G-0", "G1.5"])
        axes = [a for a in "XYZEF" if rng.random() < 0.5]
        if rng.random() < 0.05:
            axes.append(rng.choice("XYZE"))  # a letter twice: the last counts
        words = [_word(rng, a) for a in axes]
    elif kind < 0.75:
        command = rng.choice(["G4", "G20", "G21", "G90", "G91", "G92", "M82", "M83", "G28", "M104", "T0"])
        words = [_word(rng, a) for a in "XYZESP" if rng.random() < 0.3]
    elif kind < 0.82:
        command = ""
        words = [_word(rng, a) for a in "XYZE" if rng.random() < 0.5]  # no command: nothing
    elif kind < 0.88:
        command = rng.choice(["M117 Printing X10 from layer 3", "G28 M82", "G92 M83", "SET_FAN SPEED=0.5"])
        words = []
    else:
        return rng.choice(
            [b"", b"   ", b"; G1 X500 E9", b"\xff\xfe G1 X3 \xc3\xa9E1", b"G1 X1\x00Y2", b"\r", b"M84"]
        )
    sep = rng.choice([" ", " ", "", "\t"])
    text = sep.join([command, *words]) if command else " ".join(words)
    if rng.random() < 0.1:
        text += " ; G1 X999 E9 " + rng.choice(["é", "x", ";"])
    if rng.random() < 0.05:
        text += "\r"
    return text.encode("utf-8")


def _random_file(rng: random.Random) -> bytes:
    lines = [_line(rng) for _ in range(rng.randint(0, 60))]
    data = b"\n".join(lines)
    return data + b"\n" if rng.random() < 0.7 else data


def test_the_block_walk_equals_the_loop_on_thousands_of_random_files():
    rng = random.Random(18)
    for n in range(FILES):
        data = _random_file(rng)
        assert _walked_by_blocks([data]) == _walked_by_lines(data), (n, data)


def test_the_walk_carries_its_state_from_one_block_to_the_next():
    rng = random.Random(1818)
    for n in range(300):
        data = _random_file(rng)
        lines = data.split(b"\n")
        cuts = sorted(rng.sample(range(len(lines) + 1), min(4, len(lines) + 1)))
        blocks = [
            b"\n".join(lines[a:b]) + b"\n"
            for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)
            if b > a
        ]
        joined = b"".join(blocks)
        assert _walked_by_blocks(blocks) == _walked_by_lines(joined), (n, blocks)


@pytest.mark.parametrize("name", SLICED)
def test_the_block_walk_equals_the_loop_on_slicer_output(name):
    data = gzip.decompress((DATA / name).read_bytes())
    by_lines = _walked_by_lines(data)
    assert _walked_by_blocks([data]) == by_lines
    assert by_lines["filament"] > 100 and by_lines["seconds"] > 60  # it printed something


# parse_moves's figures for SLICED by the original line loop, before the block walk and
# before its move length became sqrt(dx*dx+dy*dy+dz*dz): `git show
# 9711bfb:machines/printing/gcode.py` saved as a scratch module and its parse_moves run on
# each fixture. Both cubes print the same moves, so the figures are the same. A check of
# the walk that does not rest on MoveWalk.lines, which the block walk's commit also edited.
ORIGINAL_FIGURES = {
    "estimated_seconds": 3056,
    "filament_mm": 7047.7,
    "filament_g": None,
    "estimate_source": "parsed",
    "low": (73.375, 73.375, 0.35),
    "high": (126.625, 126.625, 39.95),
}


@pytest.mark.parametrize("name", SLICED)
@pytest.mark.parametrize(("block_bytes", "block_lines"), [(gcode.BLOCK_BYTES, gcode.BLOCK_LINES), (4096, 7)])
def test_slicer_output_gives_the_figures_the_original_loop_gave(
    name, block_bytes, block_lines, tmp_path, monkeypatch
):
    path = tmp_path / "part.gcode"
    path.write_bytes(gzip.decompress((DATA / name).read_bytes()))
    monkeypatch.setattr(gcode, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(gcode, "BLOCK_LINES", block_lines)
    assert dataclasses.asdict(parse_moves(path)) == ORIGINAL_FIGURES


@pytest.mark.parametrize("name", SLICED)
def test_a_file_read_in_small_blocks_gives_the_same_figures(name, tmp_path, monkeypatch):
    path = tmp_path / "part.gcode"
    path.write_bytes(gzip.decompress((DATA / name).read_bytes()))
    whole = parse_moves(path)
    monkeypatch.setattr(gcode, "BLOCK_BYTES", 4096)
    assert parse_moves(path) == whole
    assert whole.low is not None and whole.filament_mm


def test_a_line_longer_than_a_block_is_walked_whole(tmp_path, monkeypatch):
    path = tmp_path / "long.gcode"
    path.write_bytes(b"G1 X5 Y5 E1 F600\nG1 " + b"Y1 " * 100 + b"X20 E2\nG1 X30")
    monkeypatch.setattr(gcode, "BLOCK_BYTES", 16)
    info = parse_moves(path)
    # Cut anywhere inside the second line, the move would not reach X20 with E2.
    assert (info.low, info.high) == ((0.0, 0.0, 0.0), (20.0, 5.0, 0.0))
    assert info.filament_mm == 2.0


@pytest.mark.parametrize(("block_bytes", "block_lines"), [(4096, 3), (64, 1000), (16, 2)])
def test_files_cut_by_lines_and_walked_line_by_line_where_long_give_the_loops_figures(
    block_bytes, block_lines, tmp_path, monkeypatch
):
    monkeypatch.setattr(gcode, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(gcode, "BLOCK_LINES", block_lines)
    rng = random.Random(81)
    path = tmp_path / "random.gcode"
    for n in range(300):
        data = _random_file(rng)
        path.write_bytes(data)
        walk = MoveWalk()
        walk.lines(data.split(b"\n"))
        assert parse_moves(path) == walk.info(), (n, data)


def test_a_comment_longer_than_a_block_is_left_out_of_its_line(tmp_path, monkeypatch):
    path = tmp_path / "long.gcode"
    path.write_bytes(b"G1 X5 Y5 E1 F600\nG1 X20 ;" + b"G1 X99 E9 " * 100 + b"\nG1 Y30 E2\nG1 X")
    monkeypatch.setattr(gcode, "BLOCK_BYTES", 16)
    info = parse_moves(path)
    assert (info.low, info.high) == ((0.0, 0.0, 0.0), (20.0, 30.0, 0.0))  # not X99
    assert info.filament_mm == 2.0
