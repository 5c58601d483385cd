"""Preparing a job: meshes are sliced by the real PrusaSlicer, once per distinct printer
profile, with the estimates read from its output; G-code keeps its own; a slicer failure
ends the job with the slicer's words; labs that want it approve jobs after that."""

from __future__ import annotations

import pytest

from hub.exceptions import Conflict, ValidationError
from hub.models import Notification
from machines.models import PrintJob
from machines.printing import services as printing
from machines.printing.files import gcode_path
from tests.machines.factories import add_member, make_lab
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import FAST_PROFILE, analysed_design, box_stl, gcode_upload, make_printer

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice, bob):
    lab = make_lab(alice)
    add_member(lab, bob)
    return lab


@pytest.fixture
def cube(bob):
    design, _ = analysed_design(bob, {"cube.stl": box_stl(20, 20, 10)})
    return design


def prepared(lab, owner, design, path="cube.stl", **kwargs) -> PrintJob:
    job = printing.print_job_submit(lab=lab, owner=owner, design=design, path=path, **kwargs)
    return printing.print_job_prepare(job_id=job.pk)


def test_a_mesh_is_sliced_and_the_slicers_estimates_are_stored(lab, bob, cube):
    make_printer(lab)
    job = prepared(lab, bob, cube)
    assert job.status == PrintJob.Status.QUEUED and job.queued_at is not None
    gcode = job.gcodes.get()
    assert gcode.slicer.startswith("PrusaSlicer 2.")
    assert gcode.estimate_source == "slicer"
    assert 60 < gcode.estimated_seconds == job.estimated_seconds
    assert gcode.filament_mm > 100 and job.filament_mm == gcode.filament_mm
    text = gcode_path(gcode.sha256).read_text()
    assert "; bed_shape = 0x0,250x0,250x210,0x210" in text and "; max_print_height = 210" in text


def test_printers_sharing_a_profile_share_one_gcode(lab, bob, cube):
    make_printer(lab, slug="mk4-a")
    make_printer(lab, slug="mk4-b")
    make_printer(
        lab, slug="mini", volume=(180, 180, 180), slicer_profile="layer_height = 0.3\n", profile_name="draft"
    )
    job = prepared(lab, bob, cube)
    assert sorted(job.gcodes.values_list("profile_name", flat=True)) == ["draft", "test profile"]
    assert "; layer_height = 0.3" in gcode_path(job.gcodes.get(profile_name="draft").sha256).read_text()


def test_a_printer_joining_later_gets_the_waiting_jobs_sliced_for_it(lab, alice, bob, cube):
    first = make_printer(lab)
    job = prepared(lab, bob, cube)
    later = make_printer(lab, slug="mini", volume=(180, 180, 180))
    assert job.gcodes.count() == 1  # queued for after the commit, which a test never reaches
    printing.print_job_slice_for(job_id=job.pk, machine_id=later.pk)
    assert set(job.gcodes.values_list("profile_key", flat=True)) == {first.profile_key, later.profile_key}


def test_a_slicer_failure_ends_the_job_with_the_slicers_words(lab, bob, cube):
    # No work area recorded, so only the profile's tiny bed can say the part does not fit.
    make_printer(lab, volume=(None, None, None), slicer_profile="bed_shape = 0x0,15x0,15x15,0x15\n")
    job = prepared(lab, bob, cube)
    assert job.status == PrintJob.Status.FAILED
    assert job.reason == "PrusaSlicer could not slice cube.stl: Objects could not fit on the bed"
    assert Notification.objects.filter(recipient=bob, subject="Could not prepare cube.stl").exists()


def test_slicing_is_stopped_at_its_time_limit(lab, bob, cube, settings):
    make_printer(lab)
    settings.FABHUB_SLICER_TIME_LIMIT_S = 0.001
    job = prepared(lab, bob, cube)
    assert (job.status, job.reason) == (
        PrintJob.Status.FAILED,
        "Slicing took longer than 0.001 s and was stopped.",
    )


def test_a_profile_may_not_run_programs_on_the_hub(lab, alice):
    with pytest.raises(ValidationError, match="The profile may not set post_process"):
        make_printer(lab, slicer_profile="layer_height = 0.2\npost_process = /bin/sh -c 'id > /tmp/x'\n")


def test_uploaded_gcode_keeps_its_own_estimate_or_gets_a_parsed_one(lab, bob, tmp_path):
    make_printer(lab)
    plain = write_test_gcode(tmp_path / "plain.gcode", moves=100)
    with_meta = tmp_path / "meta.gcode"
    with_meta.write_text(plain.read_text() + "; estimated printing time (normal mode) = 2m 5s\n")
    # Small files: read while submitted, and queued at once.
    parsed = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(plain))
    from_meta = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(with_meta))
    assert parsed.status == from_meta.status == PrintJob.Status.QUEUED
    assert parsed.gcodes.get().estimate_source == "parsed" and 5 < parsed.estimated_seconds < 20
    assert (from_meta.gcodes.get().estimate_source, from_meta.estimated_seconds) == ("metadata", 125)
    assert from_meta.size_mm == {"low": [0.0, 0.0, 0.3], "high": [60.0, 69.5, 0.3]}
    assert parsed.gcodes.get().profile_key == ""


def test_a_large_gcode_is_read_in_the_background_its_estimate_at_first_from_its_comments(lab, bob, tmp_path):
    make_printer(lab)
    large = write_test_gcode(tmp_path / "large.gcode", moves=7000)
    large.write_text(large.read_text() + "; estimated printing time (normal mode) = 2m 5s\n")
    assert large.stat().st_size > printing.READ_AT_SUBMIT_BYTES
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(large))
    # Nothing but the slicer's comments was read in the request: no extents, no G-code row.
    assert (job.status, job.estimated_seconds, job.size_mm) == (PrintJob.Status.PREPARING, None, None)
    assert not job.gcodes.exists()
    job = printing.print_job_prepare(job_id=job.pk)
    assert (job.status, job.estimated_seconds) == (PrintJob.Status.QUEUED, 125)
    assert job.size_mm == {"low": [0.0, 0.0, 0.3], "high": [60.0, 69.5, 0.3]}
    gcode = job.gcodes.get()
    assert (gcode.profile_key, gcode.estimate_source, gcode.size) == ("", "metadata", large.stat().st_size)


def test_a_small_gcode_in_a_lab_that_approves_jobs_waits_for_a_manager_at_once(lab, alice, bob, tmp_path):
    make_printer(lab)
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    path = write_test_gcode(tmp_path / "part.gcode", moves=20)
    path.write_text(path.read_text() + "; estimated printing time (normal mode) = 1h 2m 0s\n")
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path), copies=2)
    assert (job.status, job.queued_at, job.estimated_seconds) == (
        PrintJob.Status.PENDING_APPROVAL,
        None,
        3720,
    )
    told = Notification.objects.get(recipient=alice, subject="bob asks to print part.gcode at Fablab")
    assert told.body.startswith("Estimated 1 h 02 min, 2 copies.")
    assert printing.print_job_approve(job=job, actor=alice).status == PrintJob.Status.QUEUED


def test_preparing_twice_does_the_work_once(lab, bob, cube):
    make_printer(lab)
    job = prepared(lab, bob, cube)
    assert printing.print_job_prepare(job_id=job.pk) is None
    assert job.gcodes.count() == 1


def test_in_a_lab_that_approves_jobs_a_prepared_job_waits_for_a_manager(lab, alice, bob, cube):
    make_printer(lab)
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    job = prepared(lab, bob, cube)
    assert job.status == PrintJob.Status.PENDING_APPROVAL and job.estimated_seconds
    assert Notification.objects.filter(
        recipient=alice, subject="bob asks to print cube.stl at Fablab"
    ).exists()
    job = printing.print_job_approve(job=job, actor=alice)
    assert job.status == PrintJob.Status.QUEUED and job.decided_by == alice
    with pytest.raises(Conflict, match="no longer waiting for approval"):
        printing.print_job_approve(job=job, actor=alice)


def test_a_refusal_needs_a_reason_and_tells_the_owner(lab, alice, bob, cube):
    make_printer(lab)
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    job = prepared(lab, bob, cube)
    with pytest.raises(ValidationError, match="Say why"):
        printing.print_job_refuse(job=job, actor=alice, reason=" ")
    job = printing.print_job_refuse(job=job, actor=alice, reason="Too much filament for a test.")
    assert (job.status, job.reason) == (PrintJob.Status.REFUSED, "Too much filament for a test.")
    assert Notification.objects.get(recipient=bob, subject="Refused: cube.stl at Fablab").body == job.reason


def test_a_managers_own_job_needs_no_approval(lab, alice):
    make_printer(lab)
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    design, _ = analysed_design(alice, {"cube.stl": box_stl()}, slug="alices")
    assert prepared(lab, alice, design).status == PrintJob.Status.QUEUED


def test_the_fast_test_profile_leaves_out_heating(lab, bob, cube):
    make_printer(lab, slicer_profile=FAST_PROFILE)
    text = gcode_path(prepared(lab, bob, cube).gcodes.get().sha256).read_text()
    assert "M220 S100000" in text and "M109" not in text and "M190" not in text
