"""Broken and hostile mesh files: each is refused with a MeshError a person can act on.

Nothing here may crash, hang or allocate without bound; the hostile files are built by
the tests themselves (zip bombs with zipfile, lying headers with struct).
"""

from __future__ import annotations

import gc
import io
import os
import re
import signal
import struct
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from designs.meshes import (
    Limits,
    MeshError,
    analyse,
    geometric_diff,
    render_thumbnail,
    viewer_triangles,
    worker,
)
from designs.meshes.worker import DiffJob, MeshJob, MeshOutcome, run_batch, run_diffs, stop_warm_servers

CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus" / "meshes"
PART = CORPUS / "prusa-i3" / "fs-lever.stl"  # a binary STL of 2,450 triangles

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(200)


def refused(data: bytes, filename: str, limits: Limits | None = None) -> str:
    with pytest.raises(MeshError) as caught:
        analyse(data, filename=filename, limits=limits or Limits())
    reason = caught.value.reason
    assert reason and reason == str(caught.value)
    assert not caught.value.retryable
    return reason


def part() -> bytes:
    return PART.read_bytes()


def ascii_stl(body: str) -> bytes:
    return f"solid test\n{body}\nendsolid test\n".encode()


FACET = "facet normal 0 0 1\n outer loop\n  vertex 0 0 0\n  vertex 1 0 0\n  vertex 0 1 0\n endloop\nendfacet"


def three_mf(model: bytes, *, name: str = "3D/3dmodel.model", extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr(name, model)
        for member, content in (extra or {}).items():
            archive.writestr(member, content)
    return buffer.getvalue()


def tetra_model(items: int = 1) -> bytes:
    build = "".join('<item objectid="1"/>' for _ in range(items))
    return (
        '<?xml version="1.0"?><model unit="millimeter" '
        'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>'
        '<object id="1" type="model"><mesh><vertices>'
        '<vertex x="0" y="0" z="0"/><vertex x="10" y="0" z="0"/><vertex x="0" y="10" z="0"/>'
        '<vertex x="0" y="0" z="10"/></vertices><triangles>'
        '<triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/>'
        '<triangle v1="1" v2="2" v3="3"/><triangle v1="0" v2="3" v3="2"/>'
        f"</triangles></mesh></object></resources><build>{build}</build></model>"
    ).encode()


# --- the well-formed builders really build readable files -------------------------------


def test_the_hand_built_3mf_is_readable():
    figures = analyse(three_mf(tetra_model()), filename="t.3mf")
    assert figures.triangles == 4 and figures.watertight
    assert figures.volume_mm3 == pytest.approx(1000 / 6)


def test_the_hand_built_ascii_stl_is_readable():
    assert analyse(ascii_stl(FACET), filename="t.stl").triangles == 1


# --- binary STL --------------------------------------------------------------------------


def test_a_truncated_binary_stl_says_how_much_is_missing():
    data = part()
    reason = refused(data[: 84 + 50 * 120 + 17], "lever.stl")
    assert reason.startswith("the file ends after 120 of the 2,450 triangles its header announces")


def test_a_header_that_announces_more_triangles_than_the_file_holds_is_refused():
    data = part()
    lying = data[:80] + struct.pack("<I", 5000) + data[84:]
    reason = refused(lying, "lever.stl")
    assert "ends after 2,450 of the 5,000 triangles" in reason


def test_a_header_that_announces_fewer_triangles_than_the_file_holds_is_refused():
    data = part()
    lying = data[:80] + struct.pack("<I", 100) + data[84:]
    reason = refused(lying, "lever.stl")
    assert "announces 100 triangles (5,084 bytes) but the file has 122,584 bytes" in reason


def test_a_header_announcing_billions_of_triangles_is_refused_before_allocating():
    started = time.perf_counter()
    reason = refused(bytes(80) + struct.pack("<I", 4_000_000_000) + bytes(500), "huge.stl")
    assert reason == (
        "this is not a valid binary STL: its header announces 4,000,000,000 triangles, more than "
        "the 5,000,000 this hub analyses, and its 584 bytes hold at most 10"
    )
    assert time.perf_counter() - started < 1.0


def test_an_stl_over_the_triangle_limit_is_refused():
    reason = refused(part(), "lever.stl", Limits(max_triangles=1000))
    assert reason == "the file has 2,450 triangles, more than the 1,000 this hub analyses"


def test_a_file_over_the_byte_limit_is_refused():
    reason = refused(part(), "lever.stl", Limits(max_bytes=100_000))
    assert "122,584 bytes, more than the 100,000" in reason


def test_nan_coordinates_in_a_binary_stl_are_refused():
    records = np.frombuffer(part(), dtype=[("n", "<f4", 3), ("c", "<f4", 9), ("a", "<u2")], offset=84).copy()
    records["c"][41, 4] = np.nan
    reason = refused(part()[:84] + records.tobytes(), "lever.stl")
    assert "not finite" in reason and "triangle 42 of 2,450" in reason


def test_infinite_coordinates_in_a_binary_stl_are_refused():
    records = np.frombuffer(part(), dtype=[("n", "<f4", 3), ("c", "<f4", 9), ("a", "<u2")], offset=84).copy()
    records["c"][7, 0] = np.inf
    assert "not finite" in refused(part()[:84] + records.tobytes(), "lever.stl")


def test_a_file_too_short_for_a_binary_stl_header_is_refused():
    assert "only 40 bytes" in refused(bytes(range(40)), "short.stl")


def test_random_bytes_named_stl_are_refused():
    noise = np.random.default_rng(0).integers(0, 256, size=10_000, dtype=np.uint8).tobytes()
    reason = refused(noise, "noise.stl")
    assert "header" in reason


# --- ASCII STL --------------------------------------------------------------------------


def test_garbage_in_an_ascii_stl_vertex_is_refused_with_its_line():
    body = FACET + "\n" + FACET.replace("vertex 1 0 0", "vertex 1 banana 0")
    reason = refused(ascii_stl(body), "bad.stl")
    assert reason == "ASCII STL, facet starting on line 9: 'banana' is not a number"


def test_garbage_between_ascii_stl_facets_is_refused_with_its_line():
    reason = refused(ascii_stl(FACET + "\nthis is not a facet\n" + FACET), "bad.stl")
    assert reason.startswith("ASCII STL, line 9: expected a facet")
    assert "'this is not a facet'" in reason


def test_an_ascii_stl_loop_with_two_vertices_is_refused():
    broken = FACET.replace("  vertex 0 1 0\n", "")
    reason = refused(ascii_stl(FACET + "\n" + broken), "bad.stl")
    assert reason.startswith("ASCII STL, line 9: this facet is malformed")


def test_a_huge_blank_gap_before_garbage_does_not_hang_the_ascii_reader():
    started = time.perf_counter()
    reason = refused(ascii_stl(FACET + "\n" + " " * 2_000_000 + "!\n" + FACET), "slow.stl")
    assert "expected a facet" in reason
    assert time.perf_counter() - started < 2.0


def test_an_ascii_stl_with_nan_is_refused():
    assert "not finite" in refused(ascii_stl(FACET.replace("vertex 0 0 0", "vertex nan 0 0")), "nan.stl")


def test_an_ascii_stl_over_the_triangle_limit_is_refused():
    reason = refused(ascii_stl("\n".join([FACET] * 30)), "many.stl", Limits(max_triangles=20))
    assert "more than 20 triangles" in reason


# --- empty and foreign files ------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.stl", "a.3mf", "a.obj", "a.ply", "a.off", "a.glb"])
def test_an_empty_file_is_refused(name):
    assert refused(b"", name) == "the file is empty"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("empty.stl", "the file contains no triangles"),
        ("emptyIO_stl_empty_ascii.stl", "the file contains no triangles"),
        ("emptyIO_stl_empty_bin.stl", "the file contains no triangles"),
    ],
)
def test_the_corpus_empty_meshes_are_refused(name, expected):
    assert refused((CORPUS / "trimesh-models" / name).read_bytes(), name) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("picture.stl", "this is a PNG image, not an STL file"),
        ("picture.obj", "this is a PNG image, not an OBJ file"),
        ("picture.ply", "this is a PNG image, not a PLY file"),
        ("picture.off", "this is a PNG image, not an OFF file"),
        ("picture.3mf", "this is a PNG image, not a 3MF file"),
        ("picture.glb", "this is a PNG image, not a glTF binary (.glb) file"),
    ],
)
def test_a_png_renamed_as_a_mesh_is_refused(name, expected):
    assert refused(PNG_BYTES, name) == expected


def test_a_text_file_renamed_stl_is_refused():
    reason = refused(b"Shopping list:\n- filament\n- nozzles\n" * 5, "notes.stl")
    assert reason == "this is a text file but not an ASCII STL: an ASCII STL starts with 'solid'"


def test_a_text_file_renamed_obj_has_no_triangles():
    assert refused(b"just some words\nand more words\n", "notes.obj") == "the file contains no triangles"


def test_an_obj_of_vertices_only_has_no_triangles():
    assert refused(b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "points.obj") == "the file contains no triangles"


def test_a_file_of_another_kind_is_refused_by_name():
    assert "is not a mesh file this hub reads" in refused(part(), "lever.step")


# --- OBJ, PLY, OFF, GLB -----------------------------------------------------------------


def test_an_obj_over_the_triangle_limit_is_refused_by_counting_its_face_lines():
    data = b"v 0 0 0\nv 1 0 0\nv 0 1 0\n" + b"f 1 2 3\n" * 5_000_001
    started = time.perf_counter()
    reason = refused(data, "many.obj")
    assert reason == "the file has 5,000,001 faces, more than the 5,000,000 triangles this hub analyses"
    assert time.perf_counter() - started < 2.0


def test_an_obj_whose_polygons_split_into_too_many_triangles_is_refused():
    data = b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n" + b"f 1 2 3 4\n" * 600
    assert "more than 1,000 triangles" in refused(data, "quads.obj", Limits(max_triangles=1000))


def test_an_obj_face_pointing_past_the_vertices_is_refused():
    reason = refused(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99\n", "bad.obj")
    assert reason.startswith("could not read an OBJ file: a face refers to a vertex the file does not have")


def test_a_ply_announcing_too_many_faces_is_refused():
    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    header += (
        b"property float z\nelement face 900000000\nproperty list uchar int vertex_indices\nend_header\n"
    )
    assert "900,000,000 faces" in refused(header + bytes(100), "big.ply")


def test_a_truncated_binary_ply_is_refused():
    header = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3000\nproperty float x\nproperty float y\n"
    )
    header += b"property float z\nelement face 1000\nproperty list uchar int vertex_indices\nend_header\n"
    assert "could not read a PLY file" in refused(header + bytes(100), "cut.ply")


def test_an_off_announcing_too_many_faces_is_refused():
    assert "700,000,000 faces" in refused(b"OFF\n3 700000000 0\n0 0 0\n1 0 0\n0 1 0\n", "big.off")


def test_a_glb_with_garbage_after_its_magic_is_refused():
    data = b"glTF" + struct.pack("<II", 2, 5000) + bytes(300)
    assert refused(data, "broken.glb").startswith("could not read a glTF binary (.glb) file")


# --- 3MF --------------------------------------------------------------------------------


def test_a_3mf_zip_bomb_is_refused_before_it_is_unpacked():
    bomb = three_mf(b"<model>" + b" " * (64 * 1024**2) + b"</model>")
    assert len(bomb) < 200_000
    reason = refused(bomb, "bomb.3mf")
    assert "3D/3dmodel.model" in reason and "zip bomb" in reason


def test_a_3mf_declaring_too_many_parts_is_refused_before_zipfile_reads_it(monkeypatch):
    data = bytearray(three_mf(tetra_model()))
    struct.pack_into("<HH", data, data.rindex(b"PK\x05\x06") + 8, 60_000, 60_000)

    def construct(*args, **kwargs):
        raise AssertionError("zipfile.ZipFile was constructed")

    monkeypatch.setattr(zipfile, "ZipFile", construct)
    assert (
        refused(bytes(data), "parts.3mf") == "the 3MF archive has 60,000 parts, more than the 10,000 allowed"
    )


def test_a_3mf_declaring_more_than_the_unpacked_limit_is_refused():
    model = tetra_model() + b"<!--" + np.random.default_rng(0).bytes(3 * 1024**2).hex().encode() + b"-->"
    reason = refused(three_mf(model), "big.3mf", Limits(max_uncompressed_bytes=4 * 1024**2))
    assert "would unpack to" in reason and "more than the 4,194,304" in reason


def test_a_3mf_whose_directory_understates_a_part_is_refused():
    model = tetra_model() + b"<!--" + b"x" * 100_000 + b"-->"
    data = bytearray(three_mf(model))
    name = b"3D/3dmodel.model"
    # Patch the declared uncompressed size in the local header and the central directory.
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        position = 0
        while (position := data.find(signature, position)) != -1:
            name_at = position + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                struct.pack_into("<I", data, position + size_offset, 1000)
            position += 4
    reason = refused(bytes(data), "lying.3mf")
    assert "3D/3dmodel.model" in reason


@pytest.mark.parametrize(
    "member", ["../x.model", "/etc/x.model", "3D/../../x.model", "C:/x.model", "a\\..\\b"]
)
def test_a_3mf_with_a_path_escaping_member_name_is_refused(member):
    data = three_mf(tetra_model(), extra={member: b"<model/>"})
    assert refused(data, "evil.3mf") == f"the 3MF archive contains a part with an unsafe name: '{member}'"


def test_a_3mf_without_a_model_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", b"hello")
    assert "no 3D/3dmodel.model part" in refused(buffer.getvalue(), "empty.3mf")


def test_a_3mf_declaring_xml_entities_is_refused():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE model [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><model>&b;</model>'
    )
    assert "DOCTYPE" in refused(three_mf(laughs), "laughs.3mf")


def test_a_3mf_that_is_not_a_zip_is_refused():
    assert refused(b"<model>hello</model>", "plain.3mf") == "this is not a 3MF file: a 3MF is a ZIP archive"


def test_a_truncated_3mf_is_refused():
    data = three_mf(tetra_model())
    assert "not a readable ZIP archive" in refused(data[: len(data) // 2], "cut.3mf")


def test_a_3mf_placing_one_object_thousands_of_times_is_refused():
    reason = refused(three_mf(tetra_model(items=3000)), "instances.3mf", Limits(max_triangles=10_000))
    assert reason == "the file places more than 10,000 triangles, the most this hub analyses"


def test_a_3mf_over_the_triangle_limit_is_refused_before_parsing():
    data = (CORPUS / "trimesh-models" / "counterX.3MF").read_bytes()
    assert "more than 1,000 triangles" in refused(data, "counterX.3MF", Limits(max_triangles=1000))


def test_a_3mf_with_an_encrypted_looking_model_is_refused():
    data = bytearray(three_mf(tetra_model()))
    position = 0
    while (position := data.find(b"PK\x01\x02", position)) != -1:
        struct.pack_into("<H", data, position + 8, struct.unpack_from("<H", data, position + 8)[0] | 1)
        position += 4
    assert "encrypted" in refused(bytes(data), "locked.3mf")


# --- the other entry points refuse the same files ---------------------------------------


def test_the_diff_refuses_an_unreadable_version():
    with pytest.raises(MeshError, match="ends after 10 of the 2,450"):
        geometric_diff(part(), part()[: 84 + 50 * 10], old_name="a.stl", new_name="b.stl")


def test_the_thumbnail_refuses_an_unreadable_file():
    with pytest.raises(MeshError, match="PNG image"):
        render_thumbnail(PNG_BYTES, filename="x.stl")


def test_the_viewer_refuses_an_unreadable_file():
    with pytest.raises(MeshError, match="empty"):
        viewer_triangles(b"", filename="x.glb")


def test_a_degenerate_mesh_still_gets_figures_and_a_picture():
    # Every triangle on one line: no area, no volume, no oriented box search possible.
    line = trimesh.Trimesh(
        vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0]], faces=[[0, 1, 2], [0, 2, 1]], process=False
    )
    data = line.export(file_type="stl")
    figures = analyse(data, filename="line.stl")
    assert figures.degenerate_faces == 2 and figures.area_mm2 == 0
    assert figures.obb_size[0] == pytest.approx(2.0)
    assert render_thumbnail(data, filename="line.stl", size=32).startswith(b"\x89PNG")


def test_a_pile_of_huge_overlapping_triangles_is_drawn_in_bounded_time():
    # 200,000 copies of one triangle that fills the picture: a rasteriser that drew
    # every one would fill 26 billion pixels.
    count = 200_000
    records = np.zeros(count, dtype=[("n", "<f4", 3), ("c", "<f4", 9), ("a", "<u2")])
    records["c"] = [0, 0, 0, 100, 0, 0, 0, 100, 50]
    records["c"][:, 2] = np.linspace(0, 1, count)  # no two exactly alike
    data = bytes(80) + struct.pack("<I", count) + records.tobytes()
    started = time.perf_counter()
    assert render_thumbnail(data, filename="pile.stl", size=256).startswith(b"\x89PNG")
    assert time.perf_counter() - started < 30


# -- numbers that overflow: nothing non-finite leaves the mesh code -----------------------


def _ascii_stl(triangles) -> bytes:
    lines = ["solid x"]
    for triangle in triangles:
        lines += ["facet normal 0 0 0", "outer loop"]
        lines += [f"vertex {x!r} {y!r} {z!r}" for x, y, z in triangle]
        lines += ["endloop", "endfacet"]
    return ("\n".join([*lines, "endsolid x"]) + "\n").encode()


CORNER = _ascii_stl([((0, 0, 0), (10, 0, 0), (0, 10, 0)), ((0, 0, 0), (0, 10, 0), (0, 0, 10))])
# Finite coordinates whose areas and volumes overflow to infinity (and then NaN).
OVERFLOWING = _ascii_stl(
    [((0, 0, 0), (1e200, 0, 0), (0, 1e200, 0)), ((0, 0, 0), (0, 1e200, 0), (0, 0, 1e200))]
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_geometric_diff_whose_figures_overflow_gives_a_reason_not_nan():
    with pytest.raises(MeshError, match="too large or the surface is degenerate"):
        geometric_diff(CORNER, OVERFLOWING, old_name="a.stl", new_name="b.stl")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_figures_that_overflow_give_a_reason_not_nan():
    with pytest.raises(MeshError, match="too large or the surface is degenerate"):
        analyse(OVERFLOWING, filename="b.stl").to_dict()


# -- the guarded children: one bad file fails alone ----------------------------------------


@pytest.fixture(autouse=True)
def no_warm_servers():
    """Each test watches its own batch's server: none left warm by another test."""
    stop_warm_servers()
    yield
    stop_warm_servers()


def job(tmp_path: Path, name: str, data: bytes, filename: str = "part.stl") -> MeshJob:
    source = tmp_path / name
    source.write_bytes(data)
    return MeshJob(
        name * 40, filename, str(source), str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.bin")
    )


def slow_stl(count: int = 400_000) -> bytes:
    """400,000 random triangles: a second or two of analysis, long enough to be caught at it."""
    records = np.zeros(count, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    records["v"] = np.random.default_rng(1).random((count, 3, 3), dtype=np.float32)
    return bytes(80) + struct.pack("<I", count) + records.tobytes()


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # ended meanwhile
        parent = re.search(r"^PPid:\s+(\d+)$", text, re.MULTILINE)
        if parent and int(parent.group(1)) == pid:
            found.append(int(status.parent.name))
    return found


def analyse_in_background(jobs: list[MeshJob], **limits) -> tuple[threading.Thread, list[MeshOutcome]]:
    """run_batch in a thread, so the test can watch (and kill) the processes meanwhile;
    the list fills with the outcomes as they come."""
    outcomes: list[MeshOutcome] = []
    consumer = threading.Thread(target=lambda: outcomes.extend(run_batch(jobs, **limits)))
    consumer.start()
    return consumer, outcomes


def analysis_server() -> int:
    """The pid of this test's analysis server (the one child running the worker module)."""
    for _ in range(600):
        for pid in children_of(os.getpid()):
            try:
                if b"designs.meshes.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError("no analysis server started")


def busy_children(server: int, count: int) -> list[int]:
    """The server's children once `count` of them run, after a moment to get to work."""
    for _ in range(1200):
        children = children_of(server)
        if len(children) >= count:
            time.sleep(0.5)
            return children
        time.sleep(0.05)
    raise AssertionError(f"the server never ran {count} children")


def next_child(server: int, *, after: int) -> int:
    """The child the server forks once `after` is gone, after a moment to get to work."""
    for _ in range(1200):
        others = [pid for pid in children_of(server) if pid != after]
        if others:
            time.sleep(0.5)
            return others[0]
        time.sleep(0.05)
    raise AssertionError("the server never forked another child")


def test_with_several_children_each_bad_file_fails_with_its_own_reason(tmp_path):
    bad = {
        "b": (ascii_stl("facet nonsense"), "broken.stl"),
        "c": (PNG_BYTES, "picture.stl"),
        "d": (bytes(80) + struct.pack("<I", 4_000_000_000), "liar.stl"),
        "e": (three_mf(tetra_model(), name="../../escape.model"), "escape.3mf"),
    }
    jobs = [job(tmp_path, "a", part()), *(job(tmp_path, k, d, f) for k, (d, f) in bad.items())]
    jobs += [job(tmp_path, "f", part()), job(tmp_path, "g", part())]

    outcomes = {o.sha: o for o in run_batch(jobs, time_limit_s=60, memory_limit_bytes=3 * 1024**3, workers=2)}

    assert len(outcomes) == len(jobs)
    for name, (data, filename) in bad.items():
        assert outcomes[name * 40].reason == refused(data, filename)
        assert not (tmp_path / f"{name}.png").exists()
    expected = analyse(part(), filename="part.stl").to_dict()
    for name in "afg":
        assert outcomes[name * 40].figures == expected
        assert (tmp_path / f"{name}.png").read_bytes() == render_thumbnail(part(), filename="part.stl")
        assert (tmp_path / f"{name}.bin").read_bytes() == viewer_triangles(part(), filename="part.stl")


def test_a_child_killed_on_a_file_fails_that_file_and_a_fresh_child_takes_the_next(tmp_path):
    jobs = [
        job(tmp_path, "a", part()),
        job(tmp_path, "b", slow_stl()),
        job(tmp_path, "c", part()),
        job(tmp_path, "d", part()),
    ]
    batch = run_batch(jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3, workers=1)
    first = next(batch)  # one child, so the files go in order: "b" is next
    assert first.sha == "a" * 40 and first.ok
    (child,) = busy_children(analysis_server(), 1)
    os.kill(child, signal.SIGKILL)  # as the kernel's out-of-memory killer would

    rest = {o.sha: o for o in batch}

    assert rest["b" * 40].reason == "the analyser stopped while reading this file (signal 9)"
    assert rest["c" * 40].ok and rest["d" * 40].ok


def test_a_child_that_crashes_on_a_file_gets_it_again_once_in_a_fresh_child(tmp_path):
    """A crash of the child's own (SIGSEGV here) is most often an allocation failing in
    C code under the cap: the file goes once more to a fresh child; a second crash fails it."""
    jobs = [job(tmp_path, "a", part()), job(tmp_path, "b", slow_stl()), job(tmp_path, "c", part())]
    batch = run_batch(jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3, workers=1)
    assert next(batch).sha == "a" * 40
    (first,) = busy_children(analysis_server(), 1)
    os.kill(first, signal.SIGSEGV)
    second = next_child(analysis_server(), after=first)
    os.kill(second, signal.SIGSEGV)

    rest = {o.sha: o for o in batch}

    assert rest["b" * 40].reason == (
        "the analyser stopped while reading this file (signal 11), most likely out of the 3.0 GB of memory allowed"
    )
    assert rest["c" * 40].ok


def test_a_file_whose_first_child_crashed_is_analysed_by_the_next(tmp_path):
    jobs = [job(tmp_path, "a", part()), job(tmp_path, "b", slow_stl()), job(tmp_path, "c", part())]
    batch = run_batch(jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3, workers=1)
    assert next(batch).sha == "a" * 40
    (first,) = busy_children(analysis_server(), 1)
    os.kill(first, signal.SIGSEGV)

    rest = {o.sha: o for o in batch}

    assert rest["b" * 40].ok, rest["b" * 40].reason
    assert rest["c" * 40].ok


def test_a_child_out_of_memory_on_a_file_ends_and_a_fresh_child_analyses_the_next(tmp_path):
    """A MemoryError can fire inside C code and leave its library half changed: the child
    that met it fails that file and ends, and the next files go to a fresh child. Under
    a 600 MB cap, 2 million triangles run out of memory where 400,000 fit."""
    jobs = [
        job(tmp_path, "a", slow_stl()),
        job(tmp_path, "b", slow_stl(2_000_000)),
        job(tmp_path, "c", slow_stl()),
        job(tmp_path, "d", part()),
    ]
    consumer, outcomes = analyse_in_background(
        jobs, time_limit_s=120, memory_limit_bytes=600 * 1024**2, workers=1
    )
    server = analysis_server()
    (first_child,) = busy_children(server, 1)  # one child, so the files go in order
    others: list[int] = []
    for _ in range(2400):
        if len(outcomes) >= 2:
            # "c" takes seconds too: the child analysing it is there to be seen.
            others = [pid for pid in children_of(server) if pid != first_child]
            if others or not consumer.is_alive():
                break
        time.sleep(0.05)
    consumer.join()

    assert others, "the child that ran out of memory went on with the next file"
    rest = {o.sha: o for o in outcomes}
    assert [o.sha for o in outcomes[:2]] == ["a" * 40, "b" * 40]
    assert rest["a" * 40].ok, rest["a" * 40].reason
    # MemoryError, or an allocation failing in C code crashed the child (twice: a crashed
    # file is tried once more in a fresh child): either way the reason names the cap.
    assert re.fullmatch(
        r"the analysis needed more than the 0\.6 GB of memory allowed"
        r"|the analyser stopped while reading this file \(signal (11|7|6)\), most likely out of the 0\.6 GB of memory allowed",
        rest["b" * 40].reason or "",
    ), rest["b" * 40].reason
    assert rest["c" * 40].ok, rest["c" * 40].reason
    assert rest["d" * 40].figures == analyse(part(), filename="part.stl").to_dict()
    assert (tmp_path / "d.png").read_bytes() == render_thumbnail(part(), filename="part.stl")
    assert (tmp_path / "d.bin").read_bytes() == viewer_triangles(part(), filename="part.stl")


def test_a_server_killed_with_files_in_hand_analyses_them_again_one_at_a_time(tmp_path):
    jobs = [job(tmp_path, "a", slow_stl()), job(tmp_path, "b", slow_stl()), job(tmp_path, "c", part())]
    consumer, outcomes = analyse_in_background(
        jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3, workers=2
    )
    server = analysis_server()
    busy_children(server, 2)
    os.kill(server, signal.SIGKILL)
    consumer.join()

    assert sorted(o.sha for o in outcomes) == [name * 40 for name in "abc"]
    assert all(o.ok for o in outcomes), [o.reason for o in outcomes]


# -- a warm server, kept across batches, keeps the same guarantees ---------------------------


def warm_batch(jobs: list, **limits) -> dict[str, MeshOutcome]:
    return {o.sha: o for o in run_batch(jobs, keep_warm=True, **limits)}


def test_a_warm_server_takes_the_next_batch_and_each_bad_file_still_fails_alone(tmp_path):
    limits = {"time_limit_s": 60, "memory_limit_bytes": 3 * 1024**3, "workers": 2}
    bad = {"b": (ascii_stl("facet nonsense"), "broken.stl"), "c": (PNG_BYTES, "picture.stl")}
    first = warm_batch(
        [job(tmp_path, "a", part()), *(job(tmp_path, k, d, f) for k, (d, f) in bad.items())], **limits
    )
    server = analysis_server()

    second = warm_batch(
        [job(tmp_path, "d", ascii_stl("facet nonsense"), "broken.stl"), job(tmp_path, "e", part())], **limits
    )

    assert analysis_server() == server  # the same process served both batches
    for name, (data, filename) in bad.items():
        assert first[name * 40].reason == refused(data, filename)
    assert second["d" * 40].reason == refused(ascii_stl("facet nonsense"), "broken.stl")
    for name, outcomes in (("a", first), ("e", second)):
        assert outcomes[name * 40].figures == analyse(part(), filename="part.stl").to_dict()
        assert (tmp_path / f"{name}.png").read_bytes() == render_thumbnail(part(), filename="part.stl")
        assert (tmp_path / f"{name}.bin").read_bytes() == viewer_triangles(part(), filename="part.stl")


def test_a_child_of_a_warm_server_killed_on_a_file_fails_that_file_and_the_server_stays_warm(tmp_path):
    limits = {"time_limit_s": 120, "memory_limit_bytes": 3 * 1024**3, "workers": 1}
    warm_batch([job(tmp_path, "w", part())], **limits)
    server = analysis_server()
    batch = run_batch(
        [job(tmp_path, "a", part()), job(tmp_path, "b", slow_stl()), job(tmp_path, "c", part())],
        keep_warm=True,
        **limits,
    )
    assert next(batch).sha == "a" * 40
    (child,) = busy_children(server, 1)
    os.kill(child, signal.SIGKILL)

    rest = {o.sha: o for o in batch}
    after = warm_batch([job(tmp_path, "d", part())], **limits)

    assert rest["b" * 40].reason == "the analyser stopped while reading this file (signal 9)"
    assert rest["c" * 40].ok and after["d" * 40].ok
    assert analysis_server() == server


def test_a_warm_server_ended_by_its_idle_timer_is_freed_at_once(tmp_path, monkeypatch):
    """Once stopped, nothing of a server waits for the cyclic collector (its pipes stay
    open until freed, and the collector's pause while answering where-to-make assumes no
    cycles in the process)."""
    stop_warm_servers()  # only this test's server runs
    monkeypatch.setattr(worker, "WARM_IDLE_S", 0.2)
    limits = {"time_limit_s": 60, "memory_limit_bytes": 3 * 1024**3, "workers": 1}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        warm_batch([job(tmp_path, "a", part())], **limits)
        server = analysis_server()
        for _ in range(200):  # until the idle timer has ended it
            if not Path(f"/proc/{server}").exists():
                break
            time.sleep(0.05)
        time.sleep(0.2)  # the timer's thread returns after the stop
        gc.collect()
        servers = [o for o in gc.garbage if isinstance(o, worker._Server)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
    assert not Path(f"/proc/{server}").exists()
    assert servers == []


def test_a_warm_server_killed_between_batches_is_replaced_by_a_fresh_one(tmp_path):
    limits = {"time_limit_s": 60, "memory_limit_bytes": 3 * 1024**3, "workers": 2}
    warm_batch([job(tmp_path, "a", part())], **limits)
    old = analysis_server()
    os.kill(old, signal.SIGKILL)
    for _ in range(200):  # until it is gone, so that the next batch finds it dead
        if not Path(f"/proc/{old}").exists() or "Z" in Path(f"/proc/{old}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)

    outcomes = warm_batch([job(tmp_path, "b", part()), job(tmp_path, "c", part())], **limits)

    assert outcomes["b" * 40].ok and outcomes["c" * 40].ok


def test_geometric_diffs_on_a_warm_server_fail_alone_and_a_crash_gets_one_retry(tmp_path):
    """A hostile pair fails with its reason while the others are compared; a diff whose
    child crashes (SIGSEGV) goes once more to a fresh child, as an analysis does."""
    good, broken, slow = tmp_path / "good.stl", tmp_path / "broken.stl", tmp_path / "slow.stl"
    good.write_bytes(part())
    broken.write_bytes(ascii_stl("facet nonsense"))
    slow.write_bytes(slow_stl())
    moved = trimesh.load_mesh(PART)
    moved.apply_translation((0.5, 0, 0))
    (tmp_path / "moved.stl").write_bytes(moved.export(file_type="stl"))
    jobs = [
        DiffJob("1", str(good), str(tmp_path / "moved.stl"), "a.stl", "b.stl"),
        DiffJob("2", str(good), str(broken), "a.stl", "broken.stl"),
        DiffJob("3", str(slow), str(good), "slow.stl", "a.stl"),
        DiffJob("4", str(good), str(good), "a.stl", "a.stl"),
    ]
    batch = run_diffs(jobs, time_limit_s=60, memory_limit_bytes=3 * 1024**3, workers=1)
    outcomes = [next(batch)]  # one child, so the pairs go in order: "3" is next after "2"
    outcomes.append(next(batch))
    (child,) = busy_children(analysis_server(), 1)
    os.kill(child, signal.SIGSEGV)
    outcomes += list(batch)
    found = {o.sha: o for o in outcomes}

    expected = geometric_diff(
        part(), (tmp_path / "moved.stl").read_bytes(), old_name="a.stl", new_name="b.stl"
    )
    assert found["1"].diff == expected
    with pytest.raises(MeshError) as caught:
        geometric_diff(part(), ascii_stl("facet nonsense"), old_name="a.stl", new_name="broken.stl")
    assert found["2"].diff is None and found["2"].reason == caught.value.reason
    assert found["3"].diff is not None, found["3"].reason  # the fresh child compared it
    assert found["4"].diff is not None and found["4"].diff["identical"]
