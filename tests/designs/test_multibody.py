"""Meshes of several bodies and 3MF files of several objects: each body and object
measured, overlapping bodies measured as their union (checked against manifold3d run
here on the bodies themselves) or marked approximate with the reason."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import manifold3d
import numpy as np
import pytest
import trimesh

from designs.meshes import Limits, analyse, figures_in_units, mesh_figures, read_mesh
from designs.meshes.render import mesh_viewer_extra, mesh_viewer_triangles

MODELS = Path(__file__).parents[2].parent / "shared" / "corpus" / "meshes" / "trimesh-models"


def stl(*parts: trimesh.Trimesh) -> bytes:
    return trimesh.util.concatenate(list(parts)).export(file_type="stl")


def box(size: float, at: tuple[float, float, float] = (0, 0, 0)) -> trimesh.Trimesh:
    """An axis-aligned cube of this edge whose lowest corner is `at`."""
    cube = trimesh.creation.box(extents=(size, size, size))
    cube.apply_translation(np.array(at) + size / 2)
    return cube


def solid(mesh: trimesh.Trimesh) -> manifold3d.Manifold:
    """The mesh as a manifold3d solid, built here from the trimesh mesh itself."""
    merged = mesh.copy()
    merged.merge_vertices()
    made = manifold3d.Manifold(
        manifold3d.Mesh64(
            vert_properties=np.ascontiguousarray(merged.vertices, dtype=np.float64),
            tri_verts=np.ascontiguousarray(merged.faces, dtype=np.uint64),
        )
    )
    assert made.status() == manifold3d.Error.NoError
    return made


def union_volume(meshes: list[trimesh.Trimesh]) -> float:
    return manifold3d.Manifold.batch_boolean([solid(m) for m in meshes], manifold3d.OpType.Add).volume()


def three_mf(model: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("3D/3dmodel.model", model.encode())
    return buffer.getvalue()


def cube_object(object_id: int, name: str, extra: str = "") -> str:
    """A 10 mm cube as a 3MF object, outward-facing."""
    cube = box(10)
    vertices = "".join(f'<vertex x="{x:g}" y="{y:g}" z="{z:g}"/>' for x, y, z in cube.vertices)
    triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in cube.faces)
    return (
        f'<object id="{object_id}" type="model" name="{name}"{extra}><mesh><vertices>{vertices}</vertices>'
        f"<triangles>{triangles}</triangles></mesh></object>"
    )


MODEL_HEAD = (
    '<?xml version="1.0"?><model unit="millimeter" '
    'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" '
    'xmlns:m="http://schemas.microsoft.com/3dmanufacturing/material/2015/02"><resources>'
)


# --- bodies -------------------------------------------------------------------------------


def test_two_overlapping_cubes_are_measured_as_their_union():
    # 2 × 1000 mm³ sharing a 5 mm cube (125 mm³): 1875 mm³ exactly.
    figures = analyse(stl(box(10), box(10, (5, 5, 5))), filename="two.stl")
    assert figures.bodies == 2
    assert figures.volume_method == "union"
    assert figures.volume_mm3 == pytest.approx(1875.0, rel=1e-9)
    assert figures.overlapping_bodies == [{"bodies": [1, 2], "shared_mm3": pytest.approx(125.0, rel=1e-9)}]
    assert "bodies 1 and 2 overlap" in figures.volume_note
    assert figures.mass_g["PLA"] == pytest.approx(1.875 * 1.24, abs=1e-3)
    assert figures.mass_reliable


def test_the_union_volume_agrees_with_manifold3d_run_on_the_bodies():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=8)
    parts = [box(20), sphere.copy().apply_translation((20, 10, 10)), box(6, (40, 0, 0))]
    figures = analyse(stl(*parts), filename="mix.stl")
    expected = union_volume(parts)
    assert figures.volume_method == "union"
    assert figures.volume_mm3 == pytest.approx(expected, rel=1e-3)
    # The sphere and the far cube do not overlap: only one pair shares space.
    assert [pair["bodies"] for pair in figures.overlapping_bodies] == [[1, 2]]
    assert figures.volume_mm3 < sum(p.volume for p in parts) - 1000


def test_three_bodies_overlapping_in_a_chain_are_joined_as_one():
    # The first and last cubes do not meet (a shared corner would make them one body).
    parts = [box(10), box(10, (5, 5, 5)), box(10, (10, 10, 11))]
    figures = analyse(stl(*parts), filename="chain.stl")
    assert figures.bodies == 3
    assert figures.volume_method == "union"
    # 3,000 − 125 (first and middle) − 100 (middle and last: 5 × 5 × 4).
    assert figures.volume_mm3 == pytest.approx(union_volume(parts), rel=1e-9)
    assert figures.volume_mm3 == pytest.approx(2775.0, rel=1e-9)
    assert [pair["bodies"] for pair in figures.overlapping_bodies] == [[1, 2], [2, 3]]


def test_each_body_has_its_own_figures_largest_first():
    figures = analyse(stl(box(2, (50, 0, 0)), box(10), box(10, (5, 5, 5))), filename="three.stl")
    listed = figures.body_figures
    assert [body["number"] for body in listed] == [1, 2, 3]
    assert all(body["triangles"] == 12 and body["watertight"] for body in listed)
    volumes = sorted(body["volume_mm3"] for body in listed)
    assert volumes == pytest.approx([8.0, 1000.0, 1000.0])
    small = next(body for body in listed if body["volume_mm3"] < 10)
    assert small["bbox_min"] == pytest.approx([50, 0, 0]) and small["size"] == pytest.approx([2, 2, 2])
    assert small["area_mm2"] == pytest.approx(24.0)


def test_bodies_that_only_touch_are_summed():
    # Face to face, with no corner in common (shared corners would make them one body).
    figures = analyse(stl(box(10), box(10, (10, 2, 0))), filename="touching.stl")
    assert figures.bodies == 2
    assert figures.volume_method == "sum"
    assert figures.overlapping_bodies == []
    assert figures.volume_mm3 == pytest.approx(2000.0)


def test_bodies_far_apart_are_summed_without_a_note():
    figures = analyse(stl(box(10), box(10, (30, 0, 0))), filename="apart.stl")
    assert (figures.volume_method, figures.volume_note) == ("sum", "")
    assert figures.volume_mm3 == pytest.approx(2000.0)


def test_an_inward_facing_body_inside_another_is_a_void_not_an_overlap():
    void = trimesh.creation.icosphere(subdivisions=3, radius=3).apply_translation((5, 5, 5))
    void.invert()
    figures = analyse(stl(box(10), void), filename="hollow.stl")
    assert figures.volume_method == "sum"
    # The STL stores float32 corners: equal to the float64 sphere's volume to rounding.
    assert figures.volume_mm3 == pytest.approx(1000.0 - abs(void.volume), rel=1e-6)


def test_a_void_inside_overlapping_bodies_is_subtracted_from_their_union():
    void = trimesh.creation.icosphere(subdivisions=3, radius=2).apply_translation((7.5, 7.5, 7.5))
    outer = [box(10), box(10, (5, 5, 5))]
    inverted = void.copy()
    inverted.invert()
    figures = analyse(stl(*outer, inverted), filename="hollow-union.stl")
    expected = (
        manifold3d.Manifold.batch_boolean([solid(m) for m in outer], manifold3d.OpType.Add) - solid(void)
    ).volume()
    assert figures.volume_method == "union"
    assert figures.volume_mm3 == pytest.approx(expected, rel=1e-3)


def test_overlapping_bodies_one_of_them_open_are_approximate_with_the_reason():
    open_box = box(10, (5, 5, 5))
    open_box.update_faces(np.arange(len(open_box.faces)) >= 2)  # one side missing: a hole
    figures = analyse(stl(box(10), open_box), filename="open.stl")
    assert figures.volume_method == "approximate"
    assert "bodies 1 and 2 may overlap" in figures.volume_note
    assert "is not closed" in figures.volume_note
    assert "may count shared space twice" in figures.volume_note
    # Never silently summed: the sum is what is given, and it is marked.
    assert figures.volume_mm3 == pytest.approx(sum(body["volume_mm3"] for body in figures.body_figures))
    assert not figures.mass_reliable
    assert [body["watertight"] for body in figures.body_figures] == [True, False]


def test_a_single_body_keeps_its_figures_and_says_single():
    figures = analyse((MODELS / "20mm-xyz-cube.stl").read_bytes(), filename="cube.stl")
    assert figures.bodies == 1
    assert (figures.volume_method, figures.volume_note) == ("single", "")
    assert figures.body_figures == [] and figures.overlapping_bodies == [] and figures.objects == []


@pytest.mark.parametrize("name", ["cube_and_sphere_same_name.3mf", "pyramids.3mf"])
def test_the_corpus_multi_object_files_report_their_union_volume(name):
    scene = trimesh.load_scene(MODELS / name, process=False)
    placed = [
        scene.geometry[geometry].copy().apply_transform(transform)
        for transform, geometry in (scene.graph[node] for node in scene.graph.nodes_geometry)
    ]
    figures = analyse((MODELS / name).read_bytes(), filename=name)
    assert figures.bodies == len(placed) > 1
    assert figures.volume_method in ("sum", "union")
    assert figures.volume_mm3 == pytest.approx(union_volume(placed), rel=1e-3)


def test_the_corpus_multibody_stl_lists_its_two_bodies():
    figures = analyse((MODELS / "multibody.stl").read_bytes(), filename="multibody.stl")
    assert figures.bodies == 2
    assert len(figures.body_figures) == 2
    # Their boxes are apart, so nothing is shared; their triangles disagree on which side
    # is out, which the whole mesh's figures already say.
    assert figures.volume_method == "sum"
    assert not figures.winding_consistent and not figures.mass_reliable
    assert not any(body["winding_consistent"] for body in figures.body_figures)


def test_a_triangle_soup_is_approximate_not_silently_summed():
    figures = analyse((MODELS / "soup.stl").read_bytes(), filename="soup.stl")
    assert figures.bodies == 100
    assert figures.volume_method == "approximate"
    assert "not closed" in figures.volume_note


def test_a_declared_unit_rescales_each_body_and_its_shared_space():
    figures = analyse(stl(box(10), box(10, (5, 5, 5))), filename="two.stl").to_dict()
    inches = figures_in_units(figures, "inch")
    assert inches["volume_mm3"] == pytest.approx(1875 * 25.4**3)
    assert inches["body_figures"][0]["volume_mm3"] == pytest.approx(1000 * 25.4**3)
    assert inches["body_figures"][0]["size"] == pytest.approx([254.0] * 3)
    assert inches["overlapping_bodies"][0]["shared_mm3"] == pytest.approx(125 * 25.4**3)
    assert inches["overlapping_bodies"][0]["bodies"] == [1, 2]


# --- 3MF objects --------------------------------------------------------------------------


def test_3mf_objects_are_measured_after_their_transforms_with_colours_and_materials():
    model = (
        MODEL_HEAD
        + '<basematerials id="9"><base name="Red PLA" displaycolor="#FF0000FF"/>'
        + '<base name="Blue PETG" displaycolor="#0000FF"/></basematerials>'
        + '<m:colorgroup id="8"><m:color color="#00FF00FF"/></m:colorgroup>'
        + cube_object(1, "Body", ' pid="9" pindex="1"')
        + cube_object(2, "Lid", ' pid="8" pindex="0"')
        + "</resources><build>"
        # The body twice as large, moved 100 mm along x; the lid moved up and turned 90° about z.
        + '<item objectid="1" transform="2 0 0 0 2 0 0 0 2 100 0 0"/>'
        + '<item objectid="2" transform="0 1 0 -1 0 0 0 0 1 0 0 50"/>'
        + "</build></model>"
    )
    figures = analyse(three_mf(model), filename="kit.3mf")
    body, lid = figures.objects
    assert body["name"] == "Body" and lid["name"] == "Lid"
    assert body["volume_mm3"] == pytest.approx(8000.0)
    assert body["bbox_min"] == pytest.approx([100, 0, 0]) and body["bbox_max"] == pytest.approx([120, 20, 20])
    assert (body["colour"], body["material"]) == ("#0000ff", "Blue PETG")
    assert lid["volume_mm3"] == pytest.approx(1000.0)
    assert lid["bbox_min"] == pytest.approx([-10, 0, 50]) and lid["bbox_max"] == pytest.approx([0, 10, 60])
    assert (lid["colour"], lid["material"]) == ("#00ff00", "")
    assert figures.volume_mm3 == pytest.approx(9000.0)
    assert figures.bodies == 2


def test_overlapping_3mf_objects_are_measured_as_their_union():
    model = (
        MODEL_HEAD
        + cube_object(1, "Cube")
        + "</resources><build>"
        + '<item objectid="1"/><item objectid="1" transform="1 0 0 0 1 0 0 0 1 5 5 5"/>'
        + "</build></model>"
    )
    figures = analyse(three_mf(model), filename="overlap.3mf")
    assert [obj["volume_mm3"] for obj in figures.objects] == pytest.approx([1000.0, 1000.0])
    assert figures.volume_method == "union"
    assert figures.volume_mm3 == pytest.approx(1875.0, rel=1e-9)


def test_the_corpus_3mf_gives_each_object_its_colour():
    figures = analyse(
        (MODELS / "cube_and_sphere_same_name.3mf").read_bytes(), filename="cube_and_sphere_same_name.3mf"
    )
    assert [(obj["name"], obj["colour"]) for obj in figures.objects] == [
        ("Object", "#21bb4c"),
        ("Object_1", "#00a0e8"),
    ]
    assert figures.objects[0]["material"] == "Green"
    assert figures.objects[0]["volume_mm3"] == pytest.approx(40.0**3, rel=1e-3)
    assert figures.objects[0]["bbox_min"] == pytest.approx([-20, -20, 0], abs=1e-2)


# --- the 3D view's colour runs ----------------------------------------------------------


def viewer_runs(data: bytes, name: str, **options) -> tuple[np.ndarray, list[tuple[int, int]], int]:
    mesh = read_mesh(data, filename=name, units=None, limits=Limits())
    mesh_figures(mesh)
    triangles = np.frombuffer(mesh_viewer_triangles(mesh, **options), "<f4").reshape(-1, 3, 3)
    extra = mesh_viewer_extra(mesh)
    groups, runs = struct.unpack_from("<II", extra, 4)
    pairs = np.frombuffer(extra, "<u4", count=2 * runs, offset=20 + 4 * groups).reshape(-1, 2)
    return triangles, [(int(a), int(b)) for a, b in pairs], groups


def test_the_viewer_keeps_the_file_s_order_and_colours_interleaved_bodies_in_runs():
    small, large = box(2, (50, 0, 0)), box(10)
    # Triangles of the two bodies alternate in the file, the small body's first.
    mixed = trimesh.Trimesh(
        vertices=np.vstack([small.vertices, large.vertices]),
        faces=np.column_stack([small.faces, large.faces + 8]).reshape(-1, 3),
        process=False,
    )
    data = mixed.export(file_type="stl")
    triangles, runs, groups = viewer_runs(data, "mixed.stl")
    assert np.array_equal(triangles, mixed.triangles.astype("<f4"))
    # Both bodies have 12 triangles, so the order of their corners numbers them: the small
    # one, whose corners come first, is body 1 (group 0). Each run is one triangle.
    assert groups == 2
    assert runs == [(1, 0), (1, 1)] * 12


def test_the_runs_cover_a_simplified_view_too():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=20)
    data = stl(box(5, (40, 0, 0)), sphere)
    triangles, runs, groups = viewer_runs(data, "big.stl", max_triangles=3000)
    assert len(triangles) <= 3000
    assert sum(count for count, _ in runs) == len(triangles)
    assert [group for _, group in runs] == [1, 0]  # the cube first in the file, the sphere listed first
