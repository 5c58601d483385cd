"""The walk through a G-code's moves holds a bounded amount of memory whatever the file's
lines are like (gcode.BLOCK_BYTES states the bound): numpy's arrays per byte and per line
of a block are paid for a block at a time, and a line longer than a block is walked by the
line loop."""

from __future__ import annotations

import tracemalloc

from machines.printing.gcode import MoveWalk, parse_moves


def _peak_of_walking(path) -> tuple[object, float]:
    """parse_moves(path) and the most memory it held, in MB."""
    tracemalloc.start()
    try:
        info = parse_moves(path)
        return info, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _by_lines(data: bytes):
    walk = MoveWalk()
    walk.lines(data.split(b"\n"))
    return walk.info()


def test_a_mebibyte_of_empty_lines_is_walked_in_under_4_mb(tmp_path):
    path = tmp_path / "empty.gcode"
    path.write_bytes(b"\n" * (1 << 20))
    info, peak = _peak_of_walking(path)
    assert peak < 4  # 292 MB when a block's tables had a column for every line
    assert info == _by_lines(path.read_bytes())


def test_a_mebibyte_of_short_moves_is_walked_in_under_8_mb(tmp_path):
    path = tmp_path / "moves.gcode"
    path.write_bytes(b"G1\n" * ((1 << 20) // 3) + b"G1 X1 Y1 E1\n" * 50_000)
    info, peak = _peak_of_walking(path)
    assert peak < 8  # 166 MB with one 1 MiB block of 350,000 lines
    assert info == _by_lines(path.read_bytes())
    assert info.filament_mm == 1.0


def test_lines_of_nothing_but_words_are_walked_in_under_25_mb(tmp_path):
    path = tmp_path / "words.gcode"
    path.write_bytes((b"X1" * 125_000 + b"\n") * 8)  # each line just under two blocks
    _, peak = _peak_of_walking(path)
    assert peak < 25


def test_a_line_of_8_mb_is_walked_by_the_loop_in_under_40_mb(tmp_path):
    path = tmp_path / "line.gcode"
    path.write_bytes(b"G1 X5 E1\n" + b"G1 X1 " * ((8 << 20) // 6) + b"Y7 E3\nG1 Z2\n")
    info, peak = _peak_of_walking(path)
    assert peak < 40  # 478 MB as one block of numpy arrays; the first line loop held 206 MB
    assert info == _by_lines(path.read_bytes())
    assert info.high == (5.0, 7.0, 0.0) and info.filament_mm == 3.0


def test_a_line_of_an_8_mb_comment_is_not_held(tmp_path):
    path = tmp_path / "comment.gcode"
    path.write_bytes(b"G1 X5 E1\nG1 X9 E2 ;" + b"G1 X500 E9 " * ((8 << 20) // 11) + b"\nG1 Y3 E3\n")
    info, peak = _peak_of_walking(path)
    assert peak < 4
    assert info == _by_lines(path.read_bytes())
    assert info.high == (9.0, 3.0, 0.0) and info.filament_mm == 3.0
