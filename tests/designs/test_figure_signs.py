"""Diff figures never read "−0.0" or "0.0 % of the surface" (issue 22, part 4/7): a change
that rounds to zero has no sign, and a moved region too small to show says so."""

from __future__ import annotations

from designs.presenters import figure_rows, geometry_rows


def _row(rows, label):
    return next(r for r in rows if r["label"] == label)


def test_a_size_change_that_rounds_to_zero_reads_without_a_minus():
    rows = figure_rows({"size": [10.0, 20.0, 5.0]}, {"size": [9.98, 20.04, 5.0001]})
    delta = _row(rows, "Size (bounding box)")["delta"]
    assert "−0.0" not in delta and "+0.0" not in delta
    assert delta == "0.0 × 0.0 × 0.0 mm"


def test_a_real_shrink_keeps_its_minus_and_a_growth_its_plus():
    rows = figure_rows({"size": [10.0, 20.0, 5.0]}, {"size": [8.5, 21.5, 5.0]})
    assert _row(rows, "Size (bounding box)")["delta"] == "−1.5 × +1.5 × 0.0 mm"


def test_a_volume_change_below_the_shown_precision_has_no_sign():
    rows = figure_rows({"volume_mm3": 6000.0}, {"volume_mm3": 5999.9})
    assert _row(rows, "Volume")["delta"] == "0.00 cm³"


def test_geometry_deltas_of_negative_zero_read_as_zero():
    rows = geometry_rows(
        {"delta": {"volume_mm3": -0.0001, "size": [-0.001, 0.0, -0.0]}, "mean_distance_mm": -0.0}
    )
    texts = [r["text"] for r in rows]
    assert not any("−0" in t or "+0.0" in t for t in texts), texts
    assert "0.00 cm³" in texts and "0.00 × 0.00 × 0.00 mm" in texts and "0.00 mm" in texts


def test_a_tiny_moved_region_is_under_a_tenth_of_a_percent_not_zero():
    region = {"kind": "added", "centroid": [1.0, 2.0, 3.0], "max_distance_mm": 0.4, "share": 0.0001}
    (row,) = geometry_rows({"regions": [region]})
    (text,) = row["items"]
    assert "0.0 %" not in text and "0.0%" not in text
    assert text.endswith("under 0.1 % of the surface")


def test_a_region_share_is_shown_to_a_tenth_of_a_percent():
    region = {"kind": "removed", "centroid": [0.0, -0.01, 3.0], "max_distance_mm": 1.5, "share": 0.034}
    (row,) = geometry_rows({"regions": [region]})
    assert row["items"] == ["Removed around 0.0 × 0.0 × 3.0 mm: up to 1.50 mm, 3.4 % of the surface"]
