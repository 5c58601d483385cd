"""STEP files: exact figures from OpenCASCADE against the corpus' references, the
tessellation the pictures and diffs use, and hostile files refused with a reason in the
guarded children, which survive them.

The hostile files are written here (a loop of references, a 10,000-level chain, a file cut
in half); the real ones are the Original Prusa i3 parts in ../shared/corpus/cad/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from designs.meshes import MeshError, MeshFigures, fits, is_mesh_path, read_mesh
from designs.meshes import step as step_module
from designs.meshes.diff import mesh_geometric_diff
from designs.meshes.figures import surface_sums
from designs.meshes.render import mesh_thumbnail, mesh_viewer_triangles
from designs.meshes.step import MAX_DEPTH, MAX_STEP_BYTES, read_step
from designs.meshes.worker import PROJECT_ROOT, DiffJob, MeshJob, run_batch, run_diff

CAD = Path(__file__).parents[2].parent / "shared" / "corpus" / "cad" / "prusa-i3-step"
MESHES = Path(__file__).parents[2].parent / "shared" / "corpus" / "meshes" / "prusa-i3"
KNOB = CAD / "LCD-knob.stp"
BODY_2019 = CAD / "extruder-body.2019-07-25.stp"
BODY_2020 = CAD / "extruder-body.2020-12-07.stp"

HEADER = """ISO-10303-21;
HEADER;
FILE_DESCRIPTION(('fabhub test'),'2;1');
FILE_NAME('test.step','2026-01-01T00:00:00',(''),(''),'','','');
FILE_SCHEMA(('AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }'));
ENDSEC;
DATA;
"""
FOOTER = "ENDSEC;\nEND-ISO-10303-21;\n"


def step_text(entities: str) -> bytes:
    return (HEADER + entities + FOOTER).encode()


def refused(data: bytes, filename: str = "part.step") -> str:
    with pytest.raises(MeshError) as caught:
        read_step(data, filename=filename)
    assert caught.value.reason and not caught.value.retryable
    return caught.value.reason


@pytest.fixture(scope="module")
def knob() -> step_module.StepPart:
    return read_step(KNOB.read_bytes(), filename="LCD-knob.stp")


@pytest.fixture(scope="module")
def box_step(tmp_path_factory) -> str:
    """A 25.4 × 50.8 × 76.2 mm box written by OpenCASCADE's own STEP writer."""
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox
    from OCP.STEPControl import STEPControl_AsIs, STEPControl_Writer

    target = tmp_path_factory.mktemp("box") / "box.step"
    writer = STEPControl_Writer()
    writer.Transfer(BRepPrimAPI_MakeBox(25.4, 50.8, 76.2).Shape(), STEPControl_AsIs)
    writer.Write(str(target))
    return target.read_text()


# -- figures against the corpus ---------------------------------------------------------------


def test_step_and_stp_files_count_as_parts_to_analyse():
    assert is_mesh_path("parts/knob.step") and is_mesh_path("KNOB.STP") and is_mesh_path("a.stl")
    assert not is_mesh_path("notes.txt") and not is_mesh_path("part.step.txt")


def test_the_lcd_knob_has_the_corpus_volume_and_its_exact_bounding_box(knob):
    figures = knob.figures
    assert figures["volume_mm3"] == pytest.approx(2298.6, abs=0.05)
    # The corpus README's 31.6 × 36.4 × 8.0 is OpenCASCADE's quick box (BRepBndLib.Add,
    # around the surfaces' control points); the exact one is smaller, and the tessellation
    # (corners on the surface) reaches it.
    assert figures["size"] == pytest.approx([31.30, 36.14, 8.00], abs=0.01)
    assert all(e <= r for e, r in zip(figures["size"], [31.6, 36.4, 8.0 + 0.05], strict=True))
    corners = knob.mesh.corners_mm().reshape(-1, 3)
    assert corners.max(axis=0) - corners.min(axis=0) == pytest.approx(figures["size"], abs=0.06)
    assert figures["solids"] == 1 and figures["bodies"] == 1 and figures["exact"] is True
    assert figures["units"] == "mm" and figures["units_source"] == "declared"
    assert figures["watertight"] and figures["mass_reliable"] and figures["boundary_edges"] == 0
    assert figures["mass_g"]["PLA"] == pytest.approx(2298.6 / 1000 * 1.24, abs=0.01)


def test_the_extruder_body_of_2020_has_the_corpus_volume_and_its_exact_bounding_box():
    figures = read_step(BODY_2020.read_bytes(), filename="body.stp").figures
    assert figures["volume_mm3"] == pytest.approx(28553.3, abs=0.05)
    # The README's 62.0 × 85.6 × 21.7 is the quick box, as for the knob.
    assert figures["size"] == pytest.approx([62.0, 84.5, 20.0], abs=0.01)
    assert figures["solids"] == 1 and figures["faces"] > 100 and figures["mass_reliable"]
    # Lying on its back and turned about 47°, it fits a smaller box than the axes' one
    # (trimesh's oriented box of the same corners: 90.92 × 55.09 × 19.96, before growing
    # by the deflection).
    assert figures["obb_size"] == pytest.approx([91.13, 55.30, 20.0], abs=0.05)
    assert np.prod(figures["obb_size"]) < np.prod(figures["size"])


def test_step_figures_have_every_key_of_mesh_figures_so_pages_and_fit_checks_need_no_case(knob):
    figures = knob.figures
    again = MeshFigures.from_dict(figures).to_dict()
    assert {k: figures[k] for k in again} == again
    assert figures["format"] == "step" and figures["deflection_mm"] > 0
    # The oriented box holds the part (grown by the tessellation's deflection), so the fit
    # check works on it as on a mesh's.
    assert all(
        e >= s - 1e-6 for e, s in zip(figures["obb_size"], sorted(figures["size"], reverse=True), strict=True)
    )
    assert fits(figures["obb_size"], [40.0, 40.0, 10.0])
    assert not fits(figures["obb_size"], [30.0, 30.0, 7.0])


def test_the_tessellation_is_small_close_to_the_exact_volume_and_drawn_like_a_mesh(knob):
    triangles = len(knob.mesh.corners)
    assert 500 < triangles < 20_000
    volume, area, _ = surface_sums(knob.mesh.corners_mm())
    assert volume == pytest.approx(knob.figures["volume_mm3"], rel=0.01)
    assert area == pytest.approx(knob.figures["area_mm2"], rel=0.01)
    assert mesh_thumbnail(knob.mesh, size=64).startswith(b"\x89PNG")
    assert len(mesh_viewer_triangles(knob.mesh)) == 36 * triangles


def test_a_step_file_in_inches_is_measured_in_millimetres(box_step):
    unit = re.search(
        r"#(\d+) = \( LENGTH_UNIT\(\) NAMED_UNIT\(\*\) SI_UNIT\(\.MILLI\.,\.METRE\.\) \);", box_step
    )
    assert unit is not None
    inches = box_step.replace(
        unit.group(0),
        f"#{unit.group(1)} = ( CONVERSION_BASED_UNIT('INCH',#90001) LENGTH_UNIT() NAMED_UNIT(#90002) );\n"
        "#90001 = LENGTH_MEASURE_WITH_UNIT(LENGTH_MEASURE(25.4),#90003);\n"
        "#90002 = DIMENSIONAL_EXPONENTS(1.,0.,0.,0.,0.,0.,0.);\n"
        "#90003 = ( LENGTH_UNIT() NAMED_UNIT(*) SI_UNIT(.MILLI.,.METRE.) );",
    )

    in_mm = read_step(box_step.encode(), filename="box.step").figures
    in_inches = read_step(inches.encode(), filename="box.step").figures

    assert in_mm["units"] == "mm" and in_mm["size"] == pytest.approx([25.4, 50.8, 76.2], abs=1e-4)
    assert in_inches["units"] == "inch" and in_inches["units_source"] == "declared"
    assert in_inches["size"] == pytest.approx([25.4 * 25.4, 50.8 * 25.4, 76.2 * 25.4], abs=1e-3)
    assert in_inches["volume_mm3"] == pytest.approx(in_mm["volume_mm3"] * 25.4**3, rel=1e-9)


# -- geometric diffs through the tessellation -------------------------------------------------


def test_the_two_extruder_bodies_differ_geometrically():
    old = read_step(BODY_2019.read_bytes(), filename="body.stp").mesh
    new = read_step(BODY_2020.read_bytes(), filename="body.stp").mesh

    diff = mesh_geometric_diff(old, new, old_name="body.stp", new_name="body.stp")

    assert not diff["identical"]
    assert diff["hausdorff_mm"] > 1.0 and diff["mean_distance_mm"] > 0
    assert diff["delta"]["volume_mm3"] != 0 and diff["regions"]


def test_a_step_file_compared_with_itself_is_identical(knob):
    diff = mesh_geometric_diff(knob.mesh, knob.mesh, old_name="a.stp", new_name="a.stp")
    assert diff["identical"] and diff["hausdorff_mm"] == 0.0


def test_the_guarded_child_compares_step_with_step_and_step_with_stl(tmp_path):
    diff, reason = run_diff(
        BODY_2019,
        BODY_2020,
        old_name="body.stp",
        new_name="body.stp",
        time_limit_s=120,
        memory_limit_bytes=3 * 1024**3,
    )
    assert reason is None and diff is not None
    assert diff["hausdorff_mm"] > 1.0 and not diff["identical"]

    diff, reason = run_diff(
        KNOB,
        MESHES / "LCD-knob.stl",
        old_name="knob.stp",
        new_name="knob.stl",
        time_limit_s=120,
        memory_limit_bytes=3 * 1024**3,
    )
    assert reason is None and diff is not None
    stl = read_mesh(
        (MESHES / "LCD-knob.stl").read_bytes(), filename="knob.stl", units=None, limits=step_module.Limits()
    )
    assert diff["new"]["triangles"] == len(stl.corners)
    assert np.isfinite(diff["hausdorff_mm"])


# -- hostile files ------------------------------------------------------------------------------


def test_malformed_step_text_is_refused():
    assert refused(step_text("#1=CARTESIAN_POINT('',(1.,2.,3.);\n#2=((((( garbage ;\n")) == (
        "the STEP file could not be parsed: its text is malformed"
    )


def test_a_step_file_cut_in_half_is_refused():
    data = KNOB.read_bytes()
    assert "cut short" in refused(data[: len(data) // 2])


def test_an_empty_step_file_is_refused():
    assert refused(b"") == "the file is empty"


def test_a_step_file_past_the_size_limit_is_refused_before_it_is_read():
    data = step_text("/*" + " " * MAX_STEP_BYTES + "*/\n")
    assert f"more than the {MAX_STEP_BYTES:,}" in refused(data)


def test_an_entity_referring_to_itself_through_another_is_refused():
    reason = refused(step_text("#1=ORIENTED_EDGE('',*,*,#2,.T.);\n#2=ORIENTED_EDGE('',*,*,#1,.T.);\n"))
    assert reason == "the file's entities refer to each other in a loop (#1 → #2 → #1): the file is corrupt"


def test_an_entity_referring_to_itself_is_refused():
    assert refused(step_text("#7=ORIENTED_EDGE('',*,*,#7,.T.);\n")) == (
        "entity #7 refers to itself: the file is corrupt"
    )


def test_an_entity_number_defined_twice_is_refused():
    # References would resolve to the first #5, hiding the loop through the second.
    text = "#1=CARTESIAN_POINT('',(0.,0.,0.));\n#5=A(#1);\n#6=B(#5);\n#5=C(#6);\n"
    with pytest.raises(MeshError) as caught:
        step_module.check_step_bytes(step_text(text))
    assert caught.value.reason == "entity #5 is defined more than once: the file is corrupt"


def test_a_reference_inside_a_string_or_comment_is_not_a_loop():
    text = "#1=CARTESIAN_POINT('see #1',(0.,0.,0.));\n/* #2 refers to #2 */\n#2=DIRECTION('it''s #2',(0.,0.,1.));\n"
    assert "no shape" in refused(step_text(text))


def test_a_chain_of_ten_thousand_nested_entities_is_refused():
    chain = "".join(f"#{n}=ORIENTED_EDGE('',*,*,#{n + 1},.T.);\n" for n in range(1, 10_001))
    chain += "#10001=CARTESIAN_POINT('',(0.,0.,0.));\n"
    reason = refused(step_text(chain))
    assert f"more than {MAX_DEPTH} levels deep" in reason


def test_a_picture_named_step_is_refused():
    assert refused(b"\x89PNG\r\n\x1a\n" + bytes(100)) == "this is a PNG image, not a STEP file"
    assert refused(b"just some text\n") == "this is not a STEP file: a STEP file starts with 'ISO-10303-21;'"


def test_a_step_file_with_a_point_and_no_solid_is_refused():
    assert "holds no shape" in refused(step_text("#1=CARTESIAN_POINT('',(1.,2.,3.));\n"))


def test_a_step_file_of_surfaces_only_is_refused(box_step):
    # The box's faces as a bare shell: a shape OpenCASCADE builds, with no volume.
    shell = re.search(r"#(\d+) = CLOSED_SHELL\(", box_step)
    solid = re.search(r"#(\d+) = MANIFOLD_SOLID_BREP\('',#(\d+)\);", box_step)
    assert shell and solid
    open_shell = box_step.replace(
        solid.group(0), f"#{solid.group(1)} = SHELL_BASED_SURFACE_MODEL('',(#{solid.group(2)}));"
    )
    open_shell = open_shell.replace("CLOSED_SHELL(", "OPEN_SHELL(").replace(
        "ADVANCED_BREP_SHAPE_REPRESENTATION", "MANIFOLD_SURFACE_SHAPE_REPRESENTATION"
    )
    assert "no solid, surfaces only" in refused(open_shell.encode())


def many_boxes(box_step: str, copies: int) -> bytes:
    """The box's entities again and again under new numbers: a file OpenCASCADE reads as
    `copies` parts, which takes memory in proportion."""
    head, rest = box_step.split("DATA;\n", 1)
    data, tail = rest.split("ENDSEC;\nEND-ISO", 1)
    shifted = (
        re.sub(r"#(\d+)", lambda m, base=base: f"#{int(m.group(1)) + base}", data)
        for base in range(0, copies * 1000, 1000)
    )
    return (head + "DATA;\n" + "".join(shifted) + "ENDSEC;\nEND-ISO" + tail).encode()


def job(tmp_path: Path, name: str, data: bytes, filename: str = "part.step") -> MeshJob:
    (tmp_path / name).write_bytes(data)
    return MeshJob(
        sha=name * 40 if len(name) == 1 else name,
        path=filename,
        data_file=str(tmp_path / name),
        thumbnail_file=str(tmp_path / f"{name}.png"),
        viewer_file=str(tmp_path / f"{name}.bin"),
    )


def test_each_hostile_step_file_fails_alone_and_the_worker_analyses_the_next(tmp_path, box_step):
    hostile = {
        "b": step_text("#1=CARTESIAN_POINT('',(1.,2.,3.);\n"),
        "c": KNOB.read_bytes()[:80_000],
        "d": b"",
        "e": step_text("#1=ORIENTED_EDGE('',*,*,#2,.T.);\n#2=ORIENTED_EDGE('',*,*,#1,.T.);\n"),
        "f": step_text("".join(f"#{n}=ORIENTED_EDGE('',*,*,#{n + 1},.T.);\n" for n in range(1, 10_001))),
        "g": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "h": step_text("#1=CARTESIAN_POINT('',(1.,2.,3.));\n"),
    }
    jobs = [job(tmp_path, "a", KNOB.read_bytes()), *(job(tmp_path, k, d) for k, d in hostile.items())]
    jobs.append(job(tmp_path, "z", KNOB.read_bytes(), "knob.stp"))

    outcomes = {
        o.sha: o for o in run_batch(jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3, workers=1)
    }

    assert len(outcomes) == len(jobs)
    for name, data in hostile.items():
        assert outcomes[name * 40].reason == refused(data)
        assert not (tmp_path / f"{name}.png").exists()
    for name in "az":
        figures = outcomes[name * 40].figures
        assert figures is not None and figures["volume_mm3"] == pytest.approx(2298.6, abs=0.05)
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (tmp_path / f"{name}.bin").stat().st_size == 36 * figures["triangles"]


def address_space_after_warm_up() -> int:
    """What a child of a STEP batch holds before any file, less OpenCASCADE's libraries
    (which the cap grants on top), measured in a fresh process warmed up as its server."""
    script = (
        "from designs.meshes import worker\n"
        "library = worker._warm_up(with_meshes=False, with_step=True)\n"
        "print(worker._address_space() - library)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


def test_a_step_file_needing_more_memory_than_the_cap_fails_and_the_next_is_analysed(tmp_path, box_step):
    big = many_boxes(box_step, 1000)  # 17 MB, read as 1,000 solids
    assert len(big) < MAX_STEP_BYTES
    limit = address_space_after_warm_up() + 50 * 1024**2  # room for the knob, not for this
    jobs = [job(tmp_path, "b", big), job(tmp_path, "k", KNOB.read_bytes())]

    outcomes = {o.sha: o for o in run_batch(jobs, time_limit_s=120, memory_limit_bytes=limit, workers=1)}

    reason = outcomes["b" * 40].reason or ""
    assert "memory" in reason and f"{limit / 1024**3:.1f} GB" in reason
    knob = outcomes["k" * 40].figures
    assert knob is not None and knob["volume_mm3"] == pytest.approx(2298.6, abs=0.05)


# -- OpenCASCADE's messages stay off the result channel -----------------------------------------


def test_a_diff_in_the_server_answers_only_json_lines_though_opencascade_prints(tmp_path):
    malformed = tmp_path / "malformed"
    malformed.write_bytes(step_text("#1=CARTESIAN_POINT('',(1.,2.,3.);\n"))
    command = [sys.executable, "-m", "designs.meshes.worker", "60", str(3 * 1024**3), "1", "step"]
    line = {
        **DiffJob("d", str(malformed), str(KNOB), "old.step", "new.step").__dict__,
        "kind": "diff",
        "limit": 60,
    }

    done = subprocess.run(
        command, cwd=PROJECT_ROOT, input=json.dumps(line) + "\n", capture_output=True, text=True, timeout=300
    )

    # OpenCASCADE reports the parse error on standard output ("**** ERR StepFile ...");
    # it went to /dev/null, and the answers are the only lines.
    assert done.returncode == 0
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"started": "d"},
        {"sha": "d", "reason": "the STEP file could not be parsed: its text is malformed"},
    ]


def test_the_analysis_server_answers_only_json_lines_though_opencascade_prints(tmp_path):
    jobs = [
        job(tmp_path, "b", step_text("#1=CARTESIAN_POINT('',(1.,2.,3.);\n")),
        job(tmp_path, "k", KNOB.read_bytes()),
    ]
    command = [sys.executable, "-m", "designs.meshes.worker", "60", str(3 * 1024**3), "1", "step"]
    lines = "".join(json.dumps(j.__dict__) + "\n" for j in jobs)

    done = subprocess.run(command, cwd=PROJECT_ROOT, input=lines, capture_output=True, text=True, timeout=300)

    answers = [json.loads(line) for line in done.stdout.splitlines()]
    results = {a["sha"]: a for a in answers if "sha" in a}
    assert results["b" * 40]["reason"] == "the STEP file could not be parsed: its text is malformed"
    assert results["k" * 40]["figures"]["volume_mm3"] == pytest.approx(2298.6, abs=0.05)
    assert len(answers) == 4  # two "started", two results: nothing else


def test_a_batch_of_meshes_and_step_files_analyses_both_as_alone(tmp_path):
    from designs.meshes import analyse

    stl = (MESHES / "LCD-knob.stl").read_bytes()
    jobs = [job(tmp_path, "s", stl, "knob.stl"), job(tmp_path, "k", KNOB.read_bytes(), "knob.stp")]

    outcomes = {
        o.sha: o for o in run_batch(jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3, workers=2)
    }

    assert outcomes["s" * 40].figures == analyse(stl, filename="knob.stl").to_dict()
    step_figures = outcomes["k" * 40].figures
    assert step_figures is not None and step_figures["format"] == "step"


def test_the_3d_view_of_a_step_file_colours_its_solids_and_draws_no_seams_as_holes(box_step, knob):
    import struct

    from designs.meshes.render import mesh_viewer_extra

    three = read_step(many_boxes(box_step, 3), filename="boxes.step")
    assert three.figures["solids"] == 3 and three.figures["volume_method"] == "sum"
    assert three.figures["volume_mm3"] == pytest.approx(3 * 25.4 * 50.8 * 76.2, rel=1e-9)

    groups, runs, shown, edges = struct.unpack_from("<4I", mesh_viewer_extra(three.mesh), 4)
    assert (groups, runs, shown, edges) == (3, 3, 0, 0)
    groups, runs, shown, edges = struct.unpack_from("<4I", mesh_viewer_extra(knob.mesh), 4)
    assert (groups, shown, edges) == (1, 0, 0)
