"""designs.meshes.fits: a part's oriented box against a build volume, turned about the
vertical axis (diagonal placements included), exact at the boundary."""

from __future__ import annotations

import math
import random

import pytest

from designs.meshes import fits
from designs.meshes.base import rectangle_fits


def by_sweep(p: float, q: float, a: float, b: float, steps: int = 20_000) -> bool:
    """Whether some angle in [0°, 90°] puts a p × q rectangle inside a × b (a slow sweep)."""
    for n in range(steps + 1):
        angle = math.pi / 2 * n / steps
        c, s = math.cos(angle), math.sin(angle)
        if p * c + q * s <= a + 1e-9 and p * s + q * c <= b + 1e-9:
            return True
    return False


def test_a_part_smaller_than_the_volume_fits():
    assert fits((100, 50, 20), (250, 210, 210))


def test_a_long_thin_part_fits_diagonally_on_the_bed():
    # 300 mm is longer than both sides of a 250 × 210 bed, but the diagonal is 326 mm and
    # a 10 mm wide strip needs only 182 mm of the bed's width at the right angle.
    assert fits((300, 10, 5), (250, 210, 210))
    assert fits((5, 300, 10), (250, 210, 210))


def test_a_strip_too_wide_for_the_diagonal_does_not_fit():
    # The same length at 60 × 60 mm would need more than 210 mm of width when tilted;
    # at 60 × 5 it fits lying on its edge.
    assert not fits((300, 60, 60), (250, 210, 210))
    assert fits((300, 60, 5), (250, 210, 210))


def test_a_part_longer_than_the_bed_diagonal_does_not_fit():
    assert math.hypot(250, 210) < 330
    assert not fits((330, 1, 1), (250, 210, 210))


def test_a_square_larger_than_the_bed_never_fits_by_turning():
    assert not fits((220, 220, 5), (250, 210, 100))


def test_a_part_may_stand_on_end_when_the_volume_is_tall():
    assert fits((240, 30, 20), (210, 200, 250))


def test_the_vertical_extent_must_not_exceed_the_height():
    # The bed takes 200 × 200 only standing, and standing needs 200 mm of height.
    assert not fits((200, 200, 200), (250, 250, 150))
    assert fits((200, 200, 10), (250, 150, 210))


def test_the_height_is_the_third_size_of_the_build_volume():
    # A 300 mm rod fits lying diagonally on a 250 × 210 bed, not on a 210 × 100 one
    # (diagonal 233 mm), even though the volume is 250 mm tall.
    assert fits((300, 5, 5), (250, 210, 100))
    assert not fits((300, 5, 5), (210, 100, 250))


def test_a_part_exactly_as_large_as_the_volume_fits():
    assert fits((250, 210, 210), (250, 210, 210))
    assert fits((210, 250, 210), (250, 210, 210))
    assert not fits((250.001, 210, 210), (250, 210, 210))


def test_a_tilted_part_touching_both_walls_exactly_fits():
    # At the angle whose cosine is 4/5, a 20 × 5 rectangle spans exactly 19 × 16.
    assert rectangle_fits(20, 5, 19, 16)
    assert fits((20, 5, 3), (19, 16, 3))
    assert fits((20, 5, 3), (16, 19, 3))
    assert not rectangle_fits(20, 5, 19, 15.999999)
    assert not fits((20, 5, 3.0001), (19, 16, 3))


def test_a_segment_fits_exactly_along_the_diagonal():
    assert rectangle_fits(5, 0, 4, 3)
    assert not rectangle_fits(5.000001, 0, 4, 3)


def test_every_part_the_sorted_check_accepts_still_fits():
    rng = random.Random(7)
    for _ in range(2000):
        part = [rng.uniform(1, 300) for _ in range(3)]
        room = [rng.uniform(50, 300) for _ in range(3)]
        if all(p <= r for p, r in zip(sorted(part), sorted(room), strict=True)):
            assert fits(part, room), (part, room)


def test_the_rectangle_condition_agrees_with_a_sweep_of_angles():
    rng = random.Random(11)
    checked = 0
    for _ in range(1500):
        a = rng.uniform(50, 300)
        b = rng.uniform(20, a)
        p = rng.uniform(0.8 * a, 1.05 * math.hypot(a, b))
        q = rng.uniform(0.1, 0.7 * b)
        p, q = max(p, q), min(p, q)
        # The sweep steps in angles; leave out cases within 0.2 % of the boundary.
        if rectangle_fits(1.002 * p, 1.002 * q, a, b) != rectangle_fits(0.998 * p, 0.998 * q, a, b):
            continue
        assert rectangle_fits(p, q, a, b) == by_sweep(p, q, a, b), (p, q, a, b)
        checked += 1
    assert checked > 1000


def test_fits_needs_three_sizes():
    with pytest.raises(ValueError, match="three extents"):
        fits((10, 10), (200, 200, 200))
    with pytest.raises(ValueError, match="three extents"):
        fits((10, 10, 10), (200, 200))
