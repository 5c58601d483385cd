"""Designs with analysed meshes, printers and jobs for the print queue tests, made through
the services like real ones (real git, the real mesh analysis, the real slicer)."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from designs.models import MeshAnalysis
from designs.services import analyses_queue
from designs.services.analysis import analyses_run
from machines.models import Machine, Printer, PrintJob
from machines.printing import dispatch
from machines.printing import services as printing
from tests.factories import DesignFactory, commit_files
from tests.machines.factories import make_machine
from tests.printing.conftest import write_test_gcode

# PrusaSlicer settings for the virtual printer: no heating (it simulates heat-ups in real
# time) and a huge feed-rate multiplier, so a sliced part prints in seconds.
FAST_PROFILE = (
    "temperature = 0\nfirst_layer_temperature = 0\nbed_temperature = 0\nfirst_layer_bed_temperature = 0\n"
    "start_gcode = G28\\nM220 S100000\nend_gcode = M84\n"
)


def box_stl(x: float = 10, y: float = 10, z: float = 5) -> bytes:
    """A closed box as binary STL."""
    import trimesh

    out = io.BytesIO()
    trimesh.creation.box((x, y, z)).export(out, file_type="stl")
    return out.getvalue()


def analysed_design(
    owner, files: dict[str, bytes | str], *, slug: str = "bracket", message: str = "Add parts"
):
    """A design whose mesh files are committed and analysed (the real analysis); returns
    (design, commit sha)."""
    design = DesignFactory(owner=owner, slug=slug)
    sha = commit_files(design, files, message)
    ids = analyses_queue(design=design, commits=[sha])
    pending = list(MeshAnalysis.objects.filter(status="pending").values_list("pk", flat=True))
    analyses_run(analysis_ids=list(dict.fromkeys(ids + pending)))
    return design, sha


def make_printer(
    lab,
    *,
    slug: str = "mk4",
    name: str | None = None,
    volume=(250, 210, 210),
    url: str | None = None,
    api_key: str | None = None,
    capabilities: dict | None = None,
    **printer_fields,
) -> Printer:
    """An FDM printer of `lab` in the print queue (manual unless `url` is given)."""
    machine = make_machine(
        lab,
        slug=slug,
        kind=Machine.Kind.FDM_PRINTER,
        name=name or slug.upper(),
        work_x_mm=volume[0],
        work_y_mm=volume[1],
        work_z_mm=volume[2],
        capabilities=capabilities or {},
        connection_url=url,
        connection_api_key=api_key,
    )
    manager = lab.memberships.filter(role="manager").first().user
    printer_fields.setdefault("profile_name", "test profile")
    return printing.printer_configure(machine=machine, actor=manager, **printer_fields)


def gcode_upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="text/plain")


def queued_job(lab, owner, tmp_path, *, minutes: int = 10, name: str = "part.gcode", **kwargs) -> PrintJob:
    """A G-code job, prepared and queued, whose estimate is `minutes`."""
    path = write_test_gcode(tmp_path / name, moves=20)
    path.write_text(path.read_text() + f"; estimated printing time (normal mode) = {minutes}m 0s\n")
    # A small G-code is read while it is submitted: it joins the queue at once.
    job = printing.print_job_submit(lab=lab, owner=owner, upload=gcode_upload(path, name), **kwargs)
    assert job.status == PrintJob.Status.QUEUED, job.reason
    return job


def claimed_to_send(lab, owner, tmp_path) -> PrintJob:
    """A claimed job whose send has not run yet (a printer without network control is
    handed its job in the claim itself: what a send starts from is written here)."""
    printer = make_printer(lab)
    job = queued_job(lab, owner, tmp_path)
    assert dispatch.dispatch_tick() == [job.pk]
    PrintJob.objects.filter(pk=job.pk).update(status=PrintJob.Status.DISPATCHING)
    Printer.objects.filter(pk=printer.pk).update(state="idle", job_name="", message="")
    job.refresh_from_db()
    return job
