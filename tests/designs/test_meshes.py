"""designs.meshes on real meshes: figures, units, fit, mass, diffs, thumbnails."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh

from designs import meshes
from designs.meshes import Limits, MeshError, MeshFigures, analyse, fits, geometric_diff, render_thumbnail
from designs.meshes import figures as mesh_figures
from designs.meshes import read as mesh_read

CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus" / "meshes"
PRUSA = CORPUS / "prusa-i3"
MODELS = CORPUS / "trimesh-models"


def corpus(path: str) -> bytes:
    """A corpus file's bytes. A missing corpus fails the test: it is never skipped."""
    return (CORPUS / path).read_bytes()


def stl_bytes(mesh: trimesh.Trimesh) -> bytes:
    return mesh.export(file_type="stl")


def figures_of(mesh: trimesh.Trimesh, **options) -> MeshFigures:
    return analyse(stl_bytes(mesh), filename="part.stl", **options)


def test_the_corpus_is_there():
    assert len(list(PRUSA.glob("*.stl"))) >= 8
    assert (MODELS / "featuretype.3MF").is_file()


def test_it_knows_mesh_paths_by_extension():
    assert meshes.is_mesh_path("parts/Extruder-Body.STL")
    assert meshes.is_mesh_path("a/b.3mf") and meshes.is_mesh_path("duck.GLB")
    assert not meshes.is_mesh_path("README.md")
    assert not meshes.is_mesh_path("stl")


CLOSED_REFERENCE = [
    "prusa-i3/LCD-knob.stl",
    "prusa-i3/extruder-body.2017-03-13.stl",
    "prusa-i3/extruder-body.2017-11-29.stl",
    "prusa-i3/extruder-idler.stl",
    "prusa-i3/fs-lever.stl",
    "prusa-i3/x-carriage.stl",
    "prusa-i3/y-belt-idler.stl",
    "prusa-i3/z-axis-top.stl",
    "trimesh-models/20mm-xyz-cube.stl",
    "trimesh-models/7_8ths_cube.stl",
    "trimesh-models/busted.STL",
    "trimesh-models/multibody.stl",
    "trimesh-models/soup.stl",
    "trimesh-models/teapot.stl",
    "trimesh-models/counterX.3MF",
    "trimesh-models/cube_and_sphere_same_name.3mf",
    "trimesh-models/pyramids.3mf",
    "trimesh-models/P_XPM_0331_01.3mf",
    "trimesh-models/fandisk.obj",
    "trimesh-models/nancolor.obj",
    "trimesh-models/tet.ply",
    "trimesh-models/comments.off",
    "trimesh-models/whitespace.off",
]


@pytest.mark.parametrize("path", CLOSED_REFERENCE)
def test_its_figures_match_trimesh_on_the_corpus(path):
    figures = analyse(corpus(path), filename=path)
    reference = trimesh.load_mesh(CORPUS / path)
    scale = meshes.UNITS_MM[figures.units]
    assert figures.triangles == len(reference.faces)
    assert figures.vertices == len(reference.vertices)
    assert figures.volume_mm3 == pytest.approx(reference.volume * scale**3, rel=1e-6, abs=1e-9)
    assert figures.area_mm2 == pytest.approx(reference.area * scale**2, rel=1e-6)
    assert figures.watertight == reference.is_watertight
    assert figures.winding_consistent == reference.is_winding_consistent
    assert figures.bodies == reference.body_count
    assert figures.size == pytest.approx(tuple(reference.extents * scale), rel=1e-6)


def test_a_multibody_stl_has_two_bodies():
    figures = analyse(corpus("trimesh-models/multibody.stl"), filename="multibody.stl")
    assert figures.format == "stl-ascii"
    assert figures.bodies == 2
    assert figures.watertight


def test_a_triangle_soup_is_open_with_one_body_per_triangle():
    figures = analyse(corpus("trimesh-models/soup.stl"), filename="soup.stl")
    assert figures.bodies == figures.triangles == 100
    assert not figures.watertight
    assert figures.boundary_edges == 300
    assert not figures.mass_reliable


def test_a_closed_printed_part_is_watertight_with_a_reliable_mass():
    figures = analyse(corpus("prusa-i3/extruder-idler.stl"), filename="extruder-idler.stl")
    assert figures.format == "stl-binary"
    assert figures.watertight and figures.winding_consistent and figures.mass_reliable
    assert (figures.units, figures.units_source) == ("mm", "assumed")
    assert figures.degenerate_faces == figures.duplicate_faces == figures.non_manifold_edges == 0


def test_ascii_and_binary_stl_of_one_part_give_the_same_figures():
    binary = corpus("prusa-i3/fs-lever.stl")
    ascii_text = trimesh.load_mesh(io.BytesIO(binary), file_type="stl").export(file_type="stl_ascii")
    from_binary = analyse(binary, filename="fs-lever.stl")
    from_ascii = analyse(ascii_text.encode() if isinstance(ascii_text, str) else ascii_text, filename="a.stl")
    assert from_ascii.format == "stl-ascii"
    assert from_ascii.triangles == from_binary.triangles
    assert from_ascii.watertight == from_binary.watertight
    assert from_ascii.volume_mm3 == pytest.approx(from_binary.volume_mm3, rel=1e-5)


def test_a_binary_stl_whose_header_starts_with_solid_is_read_as_binary():
    data = bytearray(corpus("prusa-i3/fs-lever.stl"))
    data[:80] = b"solid exported by a CAD program".ljust(80, b" ")
    figures = analyse(bytes(data), filename="lever.stl")
    assert figures.format == "stl-binary"
    assert figures.watertight


def test_3mf_units_are_honoured():
    figures = analyse(corpus("trimesh-models/featuretype.3MF"), filename="featuretype.3MF")
    reference = trimesh.load_mesh(MODELS / "featuretype.3MF")
    assert (figures.units, figures.units_source) == ("inch", "declared")
    assert figures.size == pytest.approx(tuple(reference.extents * 25.4), rel=1e-9)
    assert figures.volume_mm3 == pytest.approx(reference.volume * 25.4**3, rel=1e-9)


def test_a_millimetre_3mf_says_its_units_were_declared():
    figures = analyse(corpus("trimesh-models/counterX.3MF"), filename="counterX.3MF")
    assert (figures.units, figures.units_source) == ("mm", "declared")


def test_a_units_override_rescales_an_stl():
    cube = trimesh.creation.box(extents=(1, 2, 3))
    figures = figures_of(cube, units="inch")
    assert (figures.units, figures.units_source) == ("inch", "given")
    assert figures.size == pytest.approx((25.4, 50.8, 76.2))
    assert figures.volume_mm3 == pytest.approx(6 * 25.4**3)
    assert figures.area_mm2 == pytest.approx(22 * 25.4**2)


def test_unit_names_are_understood_in_their_usual_spellings():
    cube = trimesh.creation.box(extents=(1, 1, 1))
    assert figures_of(cube, units="Millimetres").units == "mm"
    assert figures_of(cube, units="centimeter").size == pytest.approx((10, 10, 10))
    assert figures_of(cube, units="µm").size == pytest.approx((0.001, 0.001, 0.001))


def test_an_unknown_unit_is_refused():
    with pytest.raises(MeshError, match="unknown unit 'furlong'"):
        figures_of(trimesh.creation.box(), units="furlong")


def test_3mf_objects_count_as_bodies():
    assert analyse(corpus("trimesh-models/cube_and_sphere_same_name.3mf"), filename="c.3mf").bodies == 2
    assert analyse(corpus("trimesh-models/pyramids.3mf"), filename="p.3mf").bodies == 12


def test_a_glb_is_read_in_metres_and_turned_z_up():
    figures = analyse(corpus("trimesh-models/Duck.glb"), filename="Duck.glb")
    reference = trimesh.load_scene(MODELS / "Duck.glb").to_mesh()
    x, y, z = reference.extents * 1000
    assert (figures.units, figures.units_source) == ("m", "format")
    assert figures.size == pytest.approx((x, z, y), rel=1e-9)
    assert figures.triangles == len(reference.faces)
    # Its seams split trimesh's vertices by texture coordinate; by position it is closed.
    assert figures.watertight and figures.bodies == 1


def test_an_obj_with_negative_indices_is_a_closed_cube():
    figures = analyse(corpus("trimesh-models/negative_indices.obj"), filename="negative_indices.obj")
    assert figures.triangles == 12
    assert figures.volume_mm3 == pytest.approx(8.0)
    assert figures.watertight and figures.mass_reliable


def test_nan_in_obj_colours_does_not_spoil_the_geometry():
    figures = analyse(corpus("trimesh-models/nancolor.obj"), filename="nancolor.obj")
    assert figures.volume_mm3 == pytest.approx(1.0)
    assert figures.watertight


def test_an_obj_face_with_too_few_corners_is_dropped_and_the_rest_measured():
    figures = analyse(corpus("trimesh-models/notenoughindices.obj"), filename="notenoughindices.obj")
    assert figures.triangles == 1
    assert not figures.watertight and figures.boundary_edges == 3


def test_a_textured_ply_is_read_without_its_texture():
    figures = analyse(corpus("trimesh-models/fuze.ply"), filename="fuze.ply")
    assert figures.triangles == 1000
    assert figures.format == "ply"


def test_broken_corpus_meshes_without_triangles_are_refused():
    for name in ("empty.stl", "emptyIO_stl_empty_ascii.stl", "emptyIO_stl_empty_bin.stl"):
        with pytest.raises(MeshError, match="no triangles"):
            analyse(corpus(f"trimesh-models/{name}"), filename=name)


def test_degenerate_duplicate_and_non_manifold_faces_are_counted():
    cube = trimesh.creation.box(extents=(10, 10, 10))
    vertices = np.vstack([cube.vertices, [[20, 0, 0], [30, 0, 0], [40, 0, 0]]])
    faces = np.vstack([cube.faces, cube.faces[:1], [[8, 9, 10]]])
    figures = figures_of(trimesh.Trimesh(vertices, faces, process=False))
    assert figures.duplicate_faces == 1
    assert figures.degenerate_faces == 1
    assert figures.non_manifold_edges == 3  # the doubled triangle's three edges
    assert not figures.watertight


def test_inside_out_winding_gives_a_negative_volume_and_a_positive_mass():
    cube = trimesh.creation.box(extents=(10, 10, 10))
    figures = figures_of(trimesh.Trimesh(cube.vertices, cube.faces[:, ::-1], process=False))
    assert figures.volume_mm3 == pytest.approx(-1000.0)
    assert figures.mass_g["PLA"] == pytest.approx(1.24)


def test_one_flipped_triangle_breaks_the_winding():
    cube = trimesh.creation.box(extents=(10, 10, 10))
    faces = cube.faces.copy()
    faces[0] = faces[0][::-1]
    figures = figures_of(trimesh.Trimesh(cube.vertices, faces, process=False))
    assert figures.watertight
    assert not figures.winding_consistent
    assert not figures.mass_reliable


def test_minus_zero_and_zero_are_the_same_corner():
    cube = trimesh.creation.box(bounds=[[0, 0, 0], [10, 10, 10]])
    records = np.frombuffer(stl_bytes(cube), dtype=mesh_read._STL_RECORD, offset=84).copy()
    first = records["corners"][:, :, 0]
    first[first == 0] = -0.0
    data = stl_bytes(cube)[:84] + records.tobytes()
    assert np.signbit(np.frombuffer(data, dtype=mesh_read._STL_RECORD, offset=84)["corners"]).any()
    figures = analyse(data, filename="cube.stl")
    assert figures.vertices == 8
    assert figures.watertight


def test_a_rotated_box_has_its_own_extents_as_oriented_box():
    box = trimesh.creation.box(extents=(30, 20, 10))
    box.apply_transform(trimesh.transformations.euler_matrix(0.3, 0.5, 0.7))
    figures = figures_of(box)
    assert figures.obb_size == pytest.approx((30, 20, 10), abs=1e-3)
    assert not figures.obb_approximate
    assert np.prod(figures.size) > 1.5 * 6000


def test_a_large_mesh_gets_a_sampled_box_that_still_encloses_it():
    box = trimesh.creation.box(extents=(60, 40, 20))
    for _ in range(6):
        box = box.subdivide()
    box.apply_transform(trimesh.transformations.euler_matrix(0.2, 0.9, 0.4))
    assert len(box.vertices) > 20_000
    figures = figures_of(box)
    assert figures.obb_approximate
    assert figures.obb_size == pytest.approx((60, 40, 20), rel=0.02)
    assert all(got >= want - 1e-3 for got, want in zip(figures.obb_size, (60, 40, 20), strict=True))


def test_a_part_fits_a_build_volume_it_is_smaller_than():
    assert fits((100, 50, 20), (250, 210, 210))


def test_a_part_fits_once_turned_onto_the_longest_axis():
    # 240 long: too long for x (210) and y (200) as placed, fine along z (250).
    assert fits((240, 30, 20), (210, 200, 250))


def test_a_part_larger_than_the_machine_in_any_order_does_not_fit():
    # 260 mm is longer than the bed's sides but fits diagonally (tests/designs/test_fit.py).
    assert fits((260, 30, 20), (250, 210, 210))
    assert not fits((330, 30, 20), (250, 210, 210))
    assert not fits((200, 200, 200), (250, 250, 150))


def test_fits_needs_three_sizes():
    with pytest.raises(ValueError, match="three extents"):
        fits((10, 10), (200, 200, 200))


def test_mass_comes_from_the_volume_and_one_density_table():
    figures = analyse(corpus("trimesh-models/20mm-xyz-cube.stl"), filename="cube.stl")
    assert set(figures.mass_g) == set(meshes.MATERIAL_DENSITIES_G_CM3)
    for material, density in meshes.MATERIAL_DENSITIES_G_CM3.items():
        assert figures.mass_g[material] == pytest.approx(figures.volume_mm3 / 1000 * density, abs=1e-3)
    assert figures.mass_g["PLA"] == pytest.approx(9.84, abs=0.01)
    assert figures.mass_reliable


def test_an_open_mesh_says_its_mass_is_not_reliable():
    figures = analyse(corpus("trimesh-models/teapot.stl"), filename="teapot.stl")
    assert not figures.watertight
    assert not figures.mass_reliable


def test_figures_survive_a_trip_through_json():
    figures = analyse(corpus("prusa-i3/z-axis-top.stl"), filename="z-axis-top.stl")
    stored = json.loads(json.dumps(figures.to_dict()))
    assert stored["version"] == meshes.FIGURES_VERSION
    assert MeshFigures.from_dict(stored) == figures


def test_figures_of_another_version_are_not_loaded():
    stored = analyse(corpus("trimesh-models/tet.ply"), filename="tet.ply").to_dict()
    stored["version"] = meshes.FIGURES_VERSION + 1
    with pytest.raises(ValueError):
        MeshFigures.from_dict(stored)


def test_corners_merge_exactly_even_when_every_hash_collides(monkeypatch):
    points = np.random.default_rng(1).integers(0, 5, size=(3000, 3)).astype(np.float32)
    monkeypatch.setattr(mesh_figures, "_HASH_MULTIPLIERS", (np.uint64(0), np.uint64(0)))
    index, unique = mesh_figures._merge_exact(points)
    assert len(unique) == len(np.unique(points, axis=0))
    assert np.array_equal(unique[index], points)


def test_corners_merge_exactly_with_the_real_hash():
    points = np.random.default_rng(2).integers(0, 7, size=(5000, 3)).astype(np.float64) / 3
    index, unique = mesh_figures._merge_exact(points)
    assert len(unique) == len(np.unique(points, axis=0))
    assert np.array_equal(unique[index], points)


# --- geometric diff ---------------------------------------------------------------------


def test_two_versions_of_the_extruder_body_differ_where_they_changed():
    old = corpus("prusa-i3/extruder-body.2017-03-13.stl")
    new = corpus("prusa-i3/extruder-body.2017-11-29.stl")
    diff = geometric_diff(old, new, old_name="old.stl", new_name="new.stl")
    assert diff["delta"]["triangles"] == 11972 - 9740
    assert diff["delta"]["volume_mm3"] == pytest.approx(43598.2022 - 34985.6219, rel=1e-6)
    assert diff["hausdorff_mm"] > 1.0
    assert 0 < diff["mean_distance_mm"] < diff["hausdorff_mm"]
    assert diff["regions"]
    assert {region["kind"] for region in diff["regions"]} <= {"added", "removed"}
    for region in diff["regions"]:
        assert region["max_distance_mm"] > diff["threshold_mm"]
        assert all(lo <= hi for lo, hi in zip(region["bbox_min"], region["bbox_max"], strict=True))
    assert not diff["identical"]
    json.dumps(diff)


def test_identical_files_have_no_distance():
    data = corpus("prusa-i3/extruder-body.2017-11-29.stl")
    diff = geometric_diff(data, data, old_name="a.stl", new_name="b.stl")
    assert diff["hausdorff_mm"] == diff["mean_distance_mm"] == 0.0
    assert diff["regions"] == [] and diff["identical"]


def test_the_same_geometry_in_other_bytes_has_no_distance():
    data = corpus("prusa-i3/fs-lever.stl")
    renamed = b"another exporter".ljust(80, b"\0") + data[80:]
    diff = geometric_diff(data, renamed, old_name="a.stl", new_name="b.stl")
    assert diff["hausdorff_mm"] == pytest.approx(0.0, abs=1e-9)
    assert diff["regions"] == []


def test_a_moved_feature_is_found_where_it_moved():
    base = trimesh.creation.box(extents=(40, 40, 10))
    peg = trimesh.creation.box(extents=(4, 4, 10))
    before = trimesh.util.concatenate([base, peg.copy().apply_translation((10, 10, 10))])
    after = trimesh.util.concatenate([base, peg.copy().apply_translation((-10, -10, 10))])
    diff = geometric_diff(stl_bytes(before), stl_bytes(after), old_name="a.stl", new_name="b.stl")
    assert diff["hausdorff_mm"] == pytest.approx(10.0, abs=0.2)  # the peg's top above the plate
    centres = {region["kind"]: region["centroid"] for region in diff["regions"]}
    assert centres["removed"][:2] == pytest.approx((10, 10), abs=2.5)
    assert centres["added"][:2] == pytest.approx((-10, -10), abs=2.5)


def test_a_part_placed_elsewhere_is_aligned_before_its_changes_are_found():
    plate = trimesh.creation.box(extents=(60, 30, 10))
    wall = trimesh.creation.box(extents=(10, 30, 30)).apply_translation((25, 0, 10))
    peg = trimesh.creation.box(extents=(4, 4, 8))
    before = trimesh.util.concatenate([plate, wall, peg.copy().apply_translation((-20, 0, 9))])
    after = trimesh.util.concatenate([plate, wall, peg.copy().apply_translation((-5, 0, 9))])
    # The exporter turned the new version a quarter turn and moved it across the bed.
    after.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 0, 1)))
    after.apply_translation((100, 50, 5))
    # A budget no loaded machine runs out of: the regions below need the refined distances
    # (a full suite on an overloaded machine once ran out of the default 5 s).
    diff = geometric_diff(
        stl_bytes(before), stl_bytes(after), old_name="a.stl", new_name="b.stl", time_budget_s=120
    )
    assert diff["aligned"]
    assert diff["alignment_rotation_deg"] == pytest.approx(90.0, abs=0.5)
    assert diff["alignment_shift_mm"] == pytest.approx((100, 50, 5), abs=0.5)
    assert diff["as_placed_mean_distance_mm"] > 10 * diff["mean_distance_mm"]
    centres = {region["kind"]: region["centroid"] for region in diff["regions"][:2]}
    # In the new file's coordinates: old peg at x=-20 lands at (100, 30), new at (100, 45).
    assert centres["removed"][:2] == pytest.approx((100, 30), abs=3)
    assert centres["added"][:2] == pytest.approx((100, 45), abs=3)


def test_the_diff_stays_within_a_tiny_time_budget():
    old = corpus("prusa-i3/extruder-body.2017-03-13.stl")
    new = corpus("prusa-i3/extruder-body.2017-11-29.stl")
    diff = geometric_diff(old, new, old_name="a.stl", new_name="b.stl", time_budget_s=0.0)
    assert not diff["exact_refinement"]
    assert diff["hausdorff_mm"] > 1.0
    # The same files with time to spare are refined: the budget, not the files, cut it short.
    roomy = geometric_diff(old, new, old_name="a.stl", new_name="b.stl", time_budget_s=120)
    assert roomy["exact_refinement"]


# --- thumbnails and viewer --------------------------------------------------------------


def decode_png(data: bytes) -> np.ndarray:
    """The RGB pixels of a PNG written with filter 0 (as render_thumbnail writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        position += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, width * 3 + 1)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 3)


@pytest.mark.parametrize("size", [64, 256])
def test_a_thumbnail_is_a_png_of_the_requested_size_showing_the_part(size):
    png = render_thumbnail(corpus("prusa-i3/extruder-body.2017-11-29.stl"), filename="e.stl", size=size)
    pixels = decode_png(png)
    assert pixels.shape == (size, size, 3)
    background = pixels[0, 0]
    covered = (pixels != background).any(axis=2).mean()
    assert 0.15 < covered < 0.9
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # shaded, not a silhouette


def test_a_thumbnail_of_a_3mf_in_inches_is_drawn_too():
    pixels = decode_png(render_thumbnail(corpus("trimesh-models/featuretype.3MF"), filename="f.3MF", size=96))
    assert (pixels != pixels[0, 0]).any(axis=2).mean() > 0.05


def test_a_near_face_hides_a_far_one():
    # Seen from the front left above, the cube's top is lit differently from its sides;
    # a z-buffer error would show the hidden bottom's shade through the top.
    cube = trimesh.creation.box(extents=(10, 10, 10))
    pixels = decode_png(render_thumbnail(stl_bytes(cube), filename="c.stl", size=64))
    shades = {tuple(p) for p in pixels[8:56, 8:56].reshape(-1, 3)}
    assert 3 <= len(shades) <= 40


def test_the_viewer_gets_every_triangle_of_a_small_mesh_in_millimetres():
    data = corpus("trimesh-models/featuretype.3MF")
    triangles = np.frombuffer(meshes.viewer_triangles(data, filename="f.3MF"), dtype="<f4").reshape(-1, 3, 3)
    figures = analyse(data, filename="f.3MF")
    assert len(triangles) == figures.triangles
    assert triangles.reshape(-1, 3).max(axis=0) == pytest.approx(figures.bbox_max, rel=1e-6)


def test_the_viewer_gets_a_simplified_closed_shape_of_a_large_mesh():
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=30)
    data = meshes.viewer_triangles(stl_bytes(sphere), filename="s.stl", max_triangles=5000)
    triangles = np.frombuffer(data, dtype="<f4").reshape(-1, 3, 3)
    assert 1000 < len(triangles) <= 5000
    radii = np.linalg.norm(triangles.reshape(-1, 3), axis=1)
    assert radii.min() > 25 and radii.max() < 31


def test_the_viewer_thins_out_a_triangle_soup_that_no_grid_simplifies():
    rng = np.random.default_rng(0)
    soup = trimesh.Trimesh(rng.random((30_000, 3)) * 100, np.arange(30_000).reshape(-1, 3), process=False)
    data = meshes.viewer_triangles(stl_bytes(soup), filename="soup.stl", max_triangles=1000)
    assert len(data) // 36 == 1000


def test_limits_are_a_frozen_value():
    with pytest.raises(AttributeError):
        Limits().max_triangles = 1  # type: ignore[misc]


# --- the worker's outputs, checked against trimesh ----------------------------------------


WORKER_SAMPLE = [
    "prusa-i3/LCD-knob.stl",
    "prusa-i3/fs-lever.stl",
    "trimesh-models/20mm-xyz-cube.stl",
    "trimesh-models/multibody.stl",
    "trimesh-models/fandisk.obj",
    "trimesh-models/tet.ply",
]


def test_the_parallel_worker_gives_the_figures_and_triangles_trimesh_computes(tmp_path):
    """The figures, PNG and viewer triangles that come out of the guarded children (two at
    once), checked against trimesh's own reading of each file, not against our code."""
    from designs.meshes.worker import MeshJob, run_batch

    jobs = []
    for number, path in enumerate(WORKER_SAMPLE):
        name = f"{number:040d}"
        jobs.append(
            MeshJob(
                name, path, str(CORPUS / path), str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.bin")
            )
        )
    outcomes = {o.sha: o for o in run_batch(jobs, time_limit_s=60, memory_limit_bytes=3 * 1024**3, workers=2)}

    for job in jobs:
        figures = outcomes[job.sha].figures
        assert figures is not None, outcomes[job.sha].reason
        merged = trimesh.load_mesh(CORPUS / job.path)
        as_read = trimesh.load_mesh(CORPUS / job.path, process=False)
        assert figures["triangles"] == len(merged.faces)
        assert figures["vertices"] == len(merged.vertices)
        assert figures["bodies"] == merged.body_count
        assert figures["watertight"] == merged.is_watertight
        assert figures["volume_mm3"] == pytest.approx(merged.volume, rel=1e-6)
        assert figures["area_mm2"] == pytest.approx(merged.area, rel=1e-6)
        assert figures["size"] == pytest.approx(list(merged.extents), rel=1e-6)
        # An oriented box no larger than trimesh's, and no smaller than the hull it must hold.
        box = np.prod(figures["obb_size"])
        assert (
            merged.convex_hull.volume * (1 - 1e-6) <= box <= merged.bounding_box_oriented.volume * (1 + 1e-6)
        )
        assert figures["mass_g"]["PLA"] == pytest.approx(abs(merged.volume) / 1000 * 1.24, abs=1e-3)
        triangles = np.frombuffer(Path(job.viewer_file).read_bytes(), dtype="<f4").reshape(-1, 3, 3)
        assert np.array_equal(triangles, as_read.triangles.astype("<f4"))
        pixels = decode_png(Path(job.thumbnail_file).read_bytes())
        assert pixels.shape == (256, 256, 3)
        assert tuple(pixels[0, 0]) == (246, 247, 249)  # the background
        assert 0.05 < (pixels != pixels[0, 0]).any(axis=2).mean() < 0.9
