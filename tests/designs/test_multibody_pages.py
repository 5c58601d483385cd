"""Meshes of several bodies and objects on the file page: each listed in the colour the 3D
view gives it, the union or approximate volume said, the 3D view's colours and open edges
served beside its triangles."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
import trimesh
from django.urls import reverse

from designs import selectors
from designs.meshes import group_colour
from designs.models import Design, MeshAnalysis
from tests.factories import DesignFactory, commit_files


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """commit_files, with the analyses it queues run before it returns."""

    def commit(design: Design, files: dict[str, bytes]) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            commit_files(design, files, message="Add parts")

    return commit


def box(size: float, at: tuple[float, float, float] = (0, 0, 0)) -> trimesh.Trimesh:
    cube = trimesh.creation.box(extents=(size, size, size))
    cube.apply_translation(np.array(at) + size / 2)
    return cube


def stl(*parts: trimesh.Trimesh) -> bytes:
    return trimesh.util.concatenate(list(parts)).export(file_type="stl")


def two_coloured_objects() -> bytes:
    cube = box(10)
    vertices = "".join(f'<vertex x="{x:g}" y="{y:g}" z="{z:g}"/>' for x, y, z in cube.vertices)
    triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in cube.faces)
    mesh = f"<mesh><vertices>{vertices}</vertices><triangles>{triangles}</triangles></mesh>"
    model = (
        '<?xml version="1.0"?><model unit="millimeter" '
        'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>'
        '<basematerials id="5"><base name="Orange PETG" displaycolor="#FF8800"/></basematerials>'
        f'<object id="1" type="model" name="Housing" pid="5" pindex="0">{mesh}</object>'
        f'<object id="2" type="model" name="Button">{mesh}</object>'
        '</resources><build><item objectid="1"/><item objectid="2" transform="1 0 0 0 1 0 0 0 1 30 0 0"/>'
        "</build></model>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("3D/3dmodel.model", model)
    return buffer.getvalue()


@pytest.fixture
def parts(alice, commit):
    design = DesignFactory(owner=alice, slug="parts", title="Parts")
    open_box = box(10, (5, 5, 5))
    open_box.update_faces(np.arange(len(open_box.faces)) >= 2)
    commit(
        design,
        {
            # Two 10 mm cubes sharing a 6 mm one: 2,000 − 216 = 1,784 mm³.
            "overlap.stl": stl(box(10), box(10, (4, 4, 4))),
            "open.stl": stl(box(10), open_box),
            "kit.3mf": two_coloured_objects(),
        },
    )
    return Design.objects.get(pk=design.pk)


def page(client, design: Design, path: str) -> str:
    return client.get(
        reverse("design-blob", args=[design.owner.username, design.slug, path])
    ).content.decode()


def extra(client, design: Design, path: str) -> tuple[list[bytes], list[tuple[int, int]], np.ndarray, int]:
    """The 3D view's extra data of a file: (colours RGBA, runs (triangles, colour), open
    edges, open edges in all)."""
    sha = selectors.design_file(design, rev=None, path=path)[1].sha
    assert MeshAnalysis.objects.get(blob_sha=sha).status == "done"
    response = client.get(reverse("design-mesh-extra", args=[design.owner.username, design.slug, sha]))
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    assert data[:4] == b"FHX1"
    groups, runs, shown, total = struct.unpack_from("<IIII", data, 4)
    colours = [data[20 + 4 * i : 24 + 4 * i] for i in range(groups)]
    at = 20 + 4 * groups
    pairs = np.frombuffer(data, "<u4", count=2 * runs, offset=at).reshape(-1, 2)
    edges = np.frombuffer(data, "<f4", offset=at + 8 * runs).reshape(-1, 2, 3)
    assert len(edges) == shown
    return colours, [(int(a), int(b)) for a, b in pairs], edges, total


def test_overlapping_bodies_are_listed_and_the_volume_is_their_union(client, parts):
    html = page(client, parts, "overlap.stl")
    assert "Volume of the union: bodies 1 and 2 overlap" in html
    assert "Bodies 1 and 2 share 0.22 cm³" in html
    assert "1.78 cm³" in html and "2.00 cm³" not in html
    assert html.count('class="swatch"') == 2
    assert group_colour(1) in html and group_colour(2) in html


def test_the_3d_view_gets_a_colour_per_body(client, parts):
    html = page(client, parts, "overlap.stl")
    assert 'data-extra="/' in html
    colours, runs, edges, total = extra(client, parts, "overlap.stl")
    assert runs == [(12, 0), (12, 1)]
    assert colours == [bytes.fromhex(group_colour(n)[1:]) + b"\xff" for n in (1, 2)]
    assert len(edges) == 0 and total == 0


def test_open_overlapping_bodies_say_their_volume_is_approximate_and_why(client, parts):
    html = page(client, parts, "open.stl")
    assert "Volume approximate: bodies 1 and 2 may overlap" in html
    assert "is not closed" in html
    assert "may count shared space twice" in html


def test_the_3d_view_gets_the_open_edges_of_a_hole(client, parts):
    _, _, edges, total = extra(client, parts, "open.stl")
    # The missing side of the open box leaves its four edges open.
    assert total == 4 and len(edges) == 4
    corners = edges.reshape(-1, 3)
    assert np.allclose(corners.min(axis=0), [5, 5, 5]) and np.allclose(corners.max(axis=0), [15, 15, 15])


def test_3mf_objects_are_listed_with_their_colours_and_materials(client, parts):
    html = page(client, parts, "kit.3mf")
    assert "Objects" in html and "Housing" in html and "Button" in html
    assert "Orange PETG" in html and "#ff8800" in html
    assert "none given" in html  # the button has no colour of its own
    colours, runs, _, _ = extra(client, parts, "kit.3mf")
    assert runs == [(12, 0), (12, 1)]
    assert colours[0] == bytes.fromhex("ff8800") + b"\xff"
    assert colours[1] == bytes.fromhex(group_colour(2)[1:]) + b"\xff"


def test_a_single_body_page_lists_no_bodies(client, alice, commit):
    design = DesignFactory(owner=alice, slug="cube", title="Cube")
    commit(design, {"cube.stl": stl(box(10))})
    html = page(client, design, "cube.stl")
    assert "mesh-parts" not in html and "volume-note" not in html
    colours, runs, _, _ = extra(client, design, "cube.stl")
    # One group with no colour of its own: the view keeps its usual blue-grey.
    assert runs == [(12, 0)] and len(colours) == 1 and colours[0][3] == 0
