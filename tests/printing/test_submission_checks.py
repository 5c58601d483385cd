"""Submitting a job pins its file to a commit and refuses, each with its own message, what
cannot be printed: a file of another kind, a part too big, a member who may not, a lab
without a slicer for a mesh, limits reached."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from designs.models import MeshAnalysis
from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from machines import services
from machines.models import Machine, PrintJob
from machines.printing import services as printing
from tests.concurrency import on_postgres, race
from tests.factories import UserFactory, commit_files
from tests.machines.factories import add_member, make_lab
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import analysed_design, box_stl, gcode_upload, make_printer

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice, bob):
    """Alice manages the Fablab; Bob is a member. One PLA printer, 250 × 210 × 210 mm."""
    lab = make_lab(alice)
    add_member(lab, bob)
    make_printer(lab, capabilities={"materials": ["PLA", "PETG"], "nozzle_diameters_mm": [0.4, 0.6]})
    return lab


@pytest.fixture
def bracket(bob):
    return analysed_design(
        bob,
        {
            "parts/cube.stl": box_stl(),
            "parts/long.stl": box_stl(400, 10, 10),
            "README.md": "# Bracket\n",
            "parts/model.ply": "ply\n",
        },
    )


def submit(lab, user, design, path="parts/cube.stl", **kwargs):
    return printing.print_job_submit(lab=lab, owner=user, design=design, path=path, **kwargs)


def test_a_mesh_job_pins_the_commit_its_branch_names_at_submission(lab, bob, bracket):
    design, sha = bracket
    job = submit(lab, bob, design, rev="main")
    commit_files(design, {"parts/cube.stl": box_stl(12, 12, 6)}, "Bigger cube")
    job.refresh_from_db()
    assert (job.commit_sha, job.rev, job.file_kind) == (sha, "main", PrintJob.FileKind.MESH)
    assert job.blob_sha == design.repo.entry(sha, "parts/cube.stl").sha
    assert job.size_mm == {"obb": [10.0, 10.0, 5.0]}
    assert job.status == PrintJob.Status.PREPARING


def test_it_refuses_someone_who_is_not_a_member(lab, bracket):
    stranger = UserFactory(username="carol")
    with pytest.raises(PermissionDenied, match="Only members of Fablab"):
        submit(lab, stranger, bracket[0])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("README.md", "neither a mesh .* nor G-code"),
        ("parts/model.ply", "a mesh the slicer cannot read: export it as STL, 3MF or OBJ"),
    ],
)
def test_it_refuses_a_file_that_is_neither_a_mesh_nor_gcode(lab, bob, bracket, path, message):
    with pytest.raises(ValidationError, match=message):
        submit(lab, bob, bracket[0], path=path)


def test_it_refuses_binary_gcode(lab, bob):
    upload = SimpleUploadedFile("part.bgcode", b"GCDE\x01\x00", content_type="application/octet-stream")
    with pytest.raises(ValidationError, match="binary G-code"):
        printing.print_job_submit(lab=lab, owner=bob, upload=upload)


def test_it_refuses_an_upload_that_is_not_gcode_inside(lab, bob):
    upload = SimpleUploadedFile("part.gcode", b"\x89PNG\r\n\x1a\n\0\0\0", content_type="text/plain")
    with pytest.raises(ValidationError, match="does not look like G-code"):
        printing.print_job_submit(lab=lab, owner=bob, upload=upload)


def test_it_refuses_an_uploaded_mesh_meshes_come_from_designs(lab, bob):
    upload = SimpleUploadedFile("cube.stl", box_stl(), content_type="model/stl")
    with pytest.raises(ValidationError, match="Only G-code can be uploaded"):
        printing.print_job_submit(lab=lab, owner=bob, upload=upload)


def test_it_refuses_a_revision_the_design_does_not_have(lab, bob, bracket):
    with pytest.raises(NotFound, match="No branch, tag or commit 'v9'"):
        submit(lab, bob, bracket[0], rev="v9")


def test_it_refuses_a_path_missing_at_that_commit(lab, bob, bracket):
    with pytest.raises(NotFound, match="No file 'parts/gone.stl'"):
        submit(lab, bob, bracket[0], path="parts/gone.stl")


def test_only_managers_may_ask_for_more_than_normal_priority(lab, alice, bob, bracket):
    with pytest.raises(PermissionDenied, match="priority above normal"):
        submit(lab, bob, bracket[0], priority=PrintJob.Priority.HIGH)
    assert submit(lab, bob, bracket[0], priority=PrintJob.Priority.LOW).priority == PrintJob.Priority.LOW
    design, _ = analysed_design(alice, {"a.stl": box_stl()}, slug="alices")
    assert submit(lab, alice, design, path="a.stl", priority=PrintJob.Priority.URGENT).priority == 3


@pytest.mark.parametrize("copies", [0, 101])
def test_it_refuses_a_number_of_copies_out_of_range(lab, bob, bracket, copies):
    with pytest.raises(ValidationError, match="1 to 100 copies"):
        submit(lab, bob, bracket[0], copies=copies)


def test_it_refuses_a_material_no_printer_can_take(lab, bob, bracket):
    with pytest.raises(ValidationError, match="No FDM printer of Fablab takes queued jobs in ABS"):
        submit(lab, bob, bracket[0], material="abs")


def test_it_refuses_a_nozzle_no_printer_has(lab, bob, bracket):
    with pytest.raises(ValidationError, match="in PETG with a 0.80 mm nozzle"):
        submit(lab, bob, bracket[0], material="petg", nozzle_mm="0.8")
    assert submit(lab, bob, bracket[0], material="petg", nozzle_mm="0.6").nozzle_mm == Decimal("0.60")


def test_a_part_too_big_for_every_printer_is_refused_with_its_size(lab, bob, bracket):
    with pytest.raises(
        ValidationError, match=r"400 × 10 × 10 mm\) does not fit any printer .*MK4: 250 × 210 × 210"
    ):
        submit(lab, bob, bracket[0], path="parts/long.stl")


def test_a_big_part_that_fits_turned_on_a_bed_is_taken(lab, alice, bob):
    make_printer(lab, slug="big", volume=(500, 500, 500))
    design, _ = analysed_design(bob, {"long.stl": box_stl(400, 10, 10)}, slug="rail")
    assert submit(lab, bob, design, path="long.stl").size_mm == {"obb": [400.0, 10.0, 10.0]}


def test_a_mesh_not_analysed_yet_is_refused_until_it_is(lab, bob, bracket):
    design, sha = bracket
    MeshAnalysis.objects.filter(blob_sha=design.repo.entry(sha, "parts/cube.stl").sha).update(
        status="pending"
    )
    with pytest.raises(Conflict, match="still being analysed"):
        submit(lab, bob, design)


def test_a_mesh_whose_analysis_failed_is_refused_with_the_reason(lab, bob):
    design, _ = analysed_design(
        bob, {"broken.stl": b"solid x\nfacet normal 0 0 1\nendsolid\n"}, slug="broken"
    )
    with pytest.raises(ValidationError, match="the mesh analysis failed"):
        submit(lab, bob, design, path="broken.stl")


def test_a_member_must_be_qualified_for_a_printer_that_could_print_it(lab, alice, bob, bracket):
    machines = list(Machine.objects.filter(lab=lab))
    assert len(machines) == 1  # the lab's one printer
    for machine in machines:
        services.machine_update(machine=machine, actor=alice, requires_qualification=True)
    with pytest.raises(PermissionDenied, match="needs a training"):
        submit(lab, bob, bracket[0])
    services.qualification_record(
        lab=lab, actor=alice, member=bob, kind=Machine.Kind.FDM_PRINTER, trained_on="2020-01-01"
    )
    assert submit(lab, bob, bracket[0]).status == PrintJob.Status.PREPARING


def test_a_lab_without_a_slicer_refuses_meshes_but_takes_gcode(lab, alice, bob, bracket, tmp_path):
    printing.print_settings_update(lab=lab, actor=alice, slicer="none")
    with pytest.raises(ValidationError, match="Fablab has no slicer installed, so it takes G-code only"):
        submit(lab, bob, bracket[0])
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "p.gcode"))
    )
    assert job.file_kind == PrintJob.FileKind.GCODE


def test_a_hub_without_the_slicer_program_refuses_meshes(lab, bob, bracket, settings):
    settings.FABHUB_SLICER_COMMAND = "no-such-slicer-here"
    with pytest.raises(ValidationError, match="has no slicer installed"):
        submit(lab, bob, bracket[0])


def test_a_member_may_have_only_so_many_jobs_at_once(lab, alice, bob, bracket):
    printing.print_settings_update(lab=lab, actor=alice, max_active_jobs=2)
    submit(lab, bob, bracket[0])
    submit(lab, bob, bracket[0])
    with pytest.raises(ValidationError, match="You have 2 job\\(s\\) waiting or printing at Fablab"):
        submit(lab, bob, bracket[0])


def hour_of_gcode(path, *, moves: int = 10):
    """G-code whose slicer says it prints for an hour."""
    write_test_gcode(path, moves=moves)
    path.write_text(path.read_text() + "; estimated printing time (normal mode) = 1h 0m 0s\n")
    return path


def test_a_member_may_print_only_so_many_hours_a_week(lab, alice, bob, tmp_path):
    printing.print_settings_update(lab=lab, actor=alice, weekly_print_minutes=90)
    path = hour_of_gcode(tmp_path / "hour.gcode")
    first = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))
    assert first.status == PrintJob.Status.QUEUED
    # A small G-code is read while it is submitted: over the limit with its hour, refused.
    with pytest.raises(
        ValidationError,
        match=re.escape(
            "over Fablab's weekly limit of 1.5 h of printing (1.0 h used this week, this job 1.0 h)"
        ),
    ):
        printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))
    assert list(PrintJob.objects.filter(owner=bob)) == [first]
    # Already over the limit: refused too.
    printing.print_settings_update(lab=lab, actor=alice, weekly_print_minutes=30)
    with pytest.raises(ValidationError, match="weekly limit of 0.5 h of printing \\(1.0 h used this week"):
        printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_racing_submissions_never_take_a_member_over_the_limits_on_postgres(alice, bob, tmp_path):
    """Each submission checks the limits with its job's write, the member's limits locked:
    of eight racing one-hour jobs, a 3.5 h week takes three and two at once take two."""
    lab = make_lab(alice)
    add_member(lab, bob)
    make_printer(lab)
    path = hour_of_gcode(tmp_path / "hour.gcode")
    submit = lambda n: printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))  # noqa: E731

    printing.print_settings_update(lab=lab, actor=alice, weekly_print_minutes=210)
    queued, refused = race(8, submit)
    assert len(queued) == 3 and len(refused) == 5, refused
    assert all(isinstance(e, ValidationError) and "weekly limit" in e.message for e in refused)

    PrintJob.objects.filter(owner=bob).delete()
    printing.print_settings_update(lab=lab, actor=alice, weekly_print_minutes=None, max_active_jobs=2)
    queued, refused = race(8, submit)
    assert len(queued) == 2 and len(refused) == 6, refused
    assert all(isinstance(e, ValidationError) and "waiting or printing" in e.message for e in refused)
    assert PrintJob.objects.filter(owner=bob).count() == 2


def test_a_large_gcode_is_read_in_the_background_where_the_weekly_hours_fail_it(lab, alice, bob, tmp_path):
    printing.print_settings_update(lab=lab, actor=alice, weekly_print_minutes=90)
    printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(hour_of_gcode(tmp_path / "hour.gcode")))
    large = hour_of_gcode(tmp_path / "large.gcode", moves=7000)
    assert large.stat().st_size > printing.READ_AT_SUBMIT_BYTES
    second = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(large))
    assert (second.status, second.gcodes.count()) == (PrintJob.Status.PREPARING, 0)
    second = printing.print_job_prepare(job_id=second.pk)
    assert second.status == PrintJob.Status.FAILED
    assert (
        "over Fablab's weekly limit of 1.5 h of printing (1.0 h used this week, this job 1.0 h)"
        in second.reason
    )
