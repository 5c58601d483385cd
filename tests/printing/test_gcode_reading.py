"""A G-code file's own estimates are read where a slicer wrote them; otherwise a simple
parse of its moves gives the time, the filament and where it prints."""

from __future__ import annotations

import math

import pytest
from django.urls import reverse

from machines.models import PrintJob
from machines.printing.gcode import (
    MAX_ESTIMATE_SECONDS,
    MAX_FILAMENT_G,
    MAX_FILAMENT_MM,
    metadata,
    parse_duration,
    read_gcode,
)
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import make_printer


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("19m 37s", 1177), ("1h 2m 3s", 3723), ("1d 0h 0m 5s", 86405), ("45s", 45), ("soon", None)],
)
def test_it_reads_prusaslicer_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_it_reads_prusaslicer_footer_estimates():
    footer = (
        "; filament used [mm] = 217.21, 10.00\n; filament used [cm3] = 0.52\n; total filament used [g] = 0.65\n"
        "; estimated printing time (normal mode) = 5m 56s\n"
    )
    assert metadata(footer) == (356, 227.21, 0.65)


def test_it_reads_cura_header_estimates():
    assert metadata(";FLAVOR:Marlin\n;TIME:1234\n;Filament used: 1.5m\n") == (1234, 1500.0, None)


def test_a_zero_weight_without_density_is_no_weight():
    assert metadata("; total filament used [g] = 0.00\n")[2] is None


def test_a_file_without_metadata_is_parsed(tmp_path):
    path = write_test_gcode(tmp_path / "moves.gcode", moves=100, length_mm=10, feedrate=6000)
    info = read_gcode(path)
    assert info.estimate_source == "parsed"
    # 100 moves of 10 mm (or 0.5 mm sideways) at 100 mm/s, plus the moves to the start.
    assert 9 <= info.estimated_seconds <= 13
    assert info.high == (60.0, pytest.approx(69.5), 0.3)


def test_the_extents_are_those_of_the_extruding_moves(tmp_path):
    path = tmp_path / "part.gcode"
    path.write_text(
        "G21\nG90\nM82\nG1 X0 Y0 Z0.2 F6000\nG1 X200 Y5 F6000 ; travel, no extrusion\nG1 X10 Y10\n"
        "G1 X30 Y10 E1 F1200\nG1 X30 Y40 E2\nG1 X10 Y40 E3\nG1 Z5\n"
    )
    info = read_gcode(path)
    assert info.low == (10.0, 10.0, 0.2) and info.high == (30.0, 40.0, 0.2)
    assert info.filament_mm == 3.0


def test_relative_moves_and_extrusion_are_followed(tmp_path):
    path = tmp_path / "relative.gcode"
    path.write_text("G91\nM83\nG1 X10 E1 F600\nG1 X10 E1\nG92 E0\nG1 Y5 E0.5\n")
    info = read_gcode(path)
    assert info.high == (20.0, 5.0, 0.0)
    assert info.filament_mm == 2.5
    assert info.estimated_seconds in (2, 3)  # 25 mm at 10 mm/s


def test_metadata_wins_over_the_parse(tmp_path):
    path = write_test_gcode(tmp_path / "moves.gcode", moves=10)
    path.write_text(path.read_text() + "; estimated printing time (normal mode) = 1h 0m 0s\n")
    info = read_gcode(path)
    assert (info.estimated_seconds, info.estimate_source) == (3600, "metadata")
    assert info.high is not None


# -- hostile figures: a file is read whatever numbers it holds, and its figures stay storable


HUGE = "9" * 400  # a float of this is infinite


def test_a_number_of_hundreds_of_digits_neither_crashes_the_parse_nor_makes_figures_infinite(tmp_path):
    path = tmp_path / "huge.gcode"
    path.write_text(
        "G90\nM82\nG1 X10 Y10 Z0.2 F6000\n"
        f"G4 S{HUGE}\n"  # a dwell of forever
        f"G1 X{HUGE} E{HUGE}\n"  # a move and a push beyond any printer
        "G1 X20 Y20 E1 F1200\n"
    )
    info = read_gcode(path)
    assert info.estimated_seconds == MAX_ESTIMATE_SECONDS
    assert info.filament_mm is not None and info.filament_mm <= MAX_FILAMENT_MM
    assert info.low is not None and info.high is not None
    assert all(math.isfinite(v) for v in (*info.low, *info.high))


@pytest.mark.parametrize(
    "comments",
    [
        f"; estimated printing time (normal mode) = {HUGE}d 1h\n; filament used [mm] = {HUGE}\n"
        f"; filament used [g] = {HUGE}\n",
        f";TIME:{HUGE}\n;Filament used: {HUGE}m\n",
    ],
)
def test_slicer_figures_beyond_reason_are_capped(comments):
    seconds, filament_mm, filament_g = metadata(comments)
    assert seconds == MAX_ESTIMATE_SECONDS
    assert filament_mm == MAX_FILAMENT_MM
    assert filament_g in (MAX_FILAMENT_G, None)


def test_a_slicer_figure_that_is_not_a_number_is_no_figure():
    assert metadata("; filament used [mm] = 1.2.3\n;Filament used: 4.5.6m\n")[1] is None


@pytest.mark.django_db
def test_an_uploaded_g_code_with_absurd_numbers_is_answered_not_a_server_error(lab, bob_api, tmp_path):
    make_printer(lab)
    path = tmp_path / "huge.gcode"
    path.write_text(f"G90\nM82\nG1 X10 Y10 Z0.2 F6000\nG4 S{HUGE}\nG1 X20 E1\n")
    bob_api.raise_request_exception = False
    with path.open("rb") as f:
        response = bob_api.post(
            reverse("api-print-jobs"), {"lab": lab.slug, "file": f, "material": "PLA"}, format="multipart"
        )
    assert response.status_code < 500, response.content
    for job in PrintJob.objects.all():
        assert job.estimated_seconds is None or job.estimated_seconds <= MAX_ESTIMATE_SECONDS


def test_a_slicer_comment_is_found_after_a_line_that_only_mentions_its_words():
    text = (
        "; the estimated printing time below is PrusaSlicer's\n;TIME:99 is not a Cura header here either\n"
        "; estimated printing time (normal mode) = 1m 0s\n"
    )
    assert metadata(text)[0] == 60
