"""Mesh files on the pages: the 3D view, figures, fit check, thumbnails and diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from designs import selectors
from designs.models import BlobDiff, Design, MeshAnalysis
from designs.services import analysis
from tests.factories import DesignFactory, commit_files

CORPUS = Path("/work/shared/corpus/meshes/prusa-i3")
KNOB = "LCD-knob.stl"
LEVER = "fs-lever.stl"


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


TURN_X_180 = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]


def turned_stl(data: bytes, rotation: list[list[float]], shift: list[float]) -> bytes:
    """A binary STL with every corner moved by p → R p + shift: the part as re-exported."""
    import numpy as np

    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])
    count = int(np.frombuffer(data, "<u4", 1, 80)[0])
    triangles = np.frombuffer(data, record, count, 84).copy()
    triangles["corners"] = triangles["corners"] @ np.array(rotation, dtype="<f4").T + np.array(
        shift, dtype="<f4"
    )
    triangles["normal"] = triangles["normal"] @ np.array(rotation, dtype="<f4").T
    return data[:84] + triangles.tobytes()


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """commit_files, with the analyses it queues run before it returns."""

    def commit(design: Design, files: dict[str, bytes], message: str = "Add files") -> str:
        with django_capture_on_commit_callbacks(execute=True):
            return commit_files(design, files, message=message)

    return commit


@pytest.fixture
def knob(alice, commit):
    design = DesignFactory(owner=alice, slug="knob", title="LCD knob")
    commit(design, {"parts/knob.stl": corpus(KNOB), "README.md": "# Knob\n"})
    return Design.objects.get(pk=design.pk)


def blob_sha(design: Design, path: str) -> str:
    return selectors.design_file(design, rev=None, path=path)[1].sha


def blob_url(design: Design, path: str) -> str:
    return reverse("design-blob", args=[design.owner.username, design.slug, path])


def data_url(design: Design, sha: str) -> str:
    return reverse("design-mesh-data", args=[design.owner.username, design.slug, sha])


def test_the_file_page_of_a_mesh_shows_its_figures_and_the_3d_view(client, knob):
    sha = blob_sha(knob, "parts/knob.stl")
    assert MeshAnalysis.objects.get(blob_sha=sha).status == "done"

    page = client.get(blob_url(knob, "parts/knob.stl")).content.decode()

    assert f'data-new="{data_url(knob, sha)}"' in page
    assert "<canvas" in page
    assert "hub/viewer.js" in page
    for label in (
        "Size (bounding box)",
        "Oriented size",
        "Volume",
        "cm³",
        "Triangles",
        "Watertight",
        "Bodies",
    ):
        assert label in page
    assert "Estimated mass" in page and "PLA" in page
    assert "solid knob" not in page  # an ASCII STL is not shown as text


def test_the_mesh_data_route_serves_float32_triangles(client, knob):
    sha = blob_sha(knob, "parts/knob.stl")

    response = client.get(data_url(knob, sha))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    data = b"".join(response.streaming_content)
    figures = MeshAnalysis.objects.get(blob_sha=sha).figures
    assert len(data) > 0 and len(data) % 36 == 0
    assert len(data) // 36 <= figures["triangles"]


def test_the_mesh_data_of_a_private_design_is_a_404_to_a_stranger(client, alice, bob, commit):
    design = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit(design, {"lever.stl": corpus(LEVER)})
    url = data_url(design, blob_sha(design, "lever.stl"))

    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 200


def test_the_mesh_data_of_a_blob_from_another_design_is_a_404(client, alice, knob):
    other = DesignFactory(owner=alice, slug="other")
    commit_files(other, {"notes.txt": "nothing here\n"})

    assert client.get(data_url(other, blob_sha(knob, "parts/knob.stl"))).status_code == 404


def test_a_failed_analysis_shows_its_reason(client, alice, commit):
    design = DesignFactory(owner=alice, slug="broken")
    commit(design, {"broken.stl": b"this is not a mesh at all, just some words\n" * 3})
    row = MeshAnalysis.objects.get(blob_sha=blob_sha(design, "broken.stl"))
    assert row.status == "failed" and row.reason

    page = client.get(blob_url(design, "broken.stl")).content.decode()

    assert "the analysis failed" in page
    assert str(row.reason).replace("'", "&#x27;").replace('"', "&quot;") in page
    assert "data-mesh-viewer" not in page


def test_a_pending_analysis_asks_to_reload_in_a_moment(client, knob):
    MeshAnalysis.objects.filter(blob_sha=blob_sha(knob, "parts/knob.stl")).update(
        status="pending", figures=None
    )

    page = client.get(blob_url(knob, "parts/knob.stl")).content.decode()

    assert "is being analysed — reload in a moment" in page
    assert "data-mesh-viewer" not in page


def test_the_fit_check_says_whether_the_part_fits(client, knob):
    url = blob_url(knob, "parts/knob.stl")

    fits = client.get(url, {"build_volume": "250x210x210"}).content.decode()
    too_small = client.get(url, {"build_volume": "10 × 10 × 10"}).content.decode()
    nonsense = client.get(url, {"build_volume": "big"}).content.decode()

    assert "Fits in 250x210x210 mm (rotation allowed)" in fits
    assert "Does not fit in 10 × 10 × 10 mm" in too_small
    assert "Build volume must look like 250x210x210" in nonsense


def test_the_fit_check_allows_turning_the_part(client, knob):
    """A part longer than the bed is wide may still fit once turned."""
    figures = MeshAnalysis.objects.get(blob_sha=blob_sha(knob, "parts/knob.stl")).figures
    x, y, z = sorted(figures["obb_size"])
    volume = f"{z + 1:.1f}x{y + 1:.1f}x{x + 1:.1f}"  # longest side along X

    page = client.get(blob_url(knob, "parts/knob.stl"), {"build_volume": volume}).content.decode()

    assert "Fits in" in page


def list_queries(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("design-list")).content.decode()
    return len(queries), page


def test_the_design_list_shows_cover_thumbnails_without_a_query_per_design(client, alice, commit):
    first = DesignFactory(owner=alice, slug="part-0")
    commit(first, {"part.stl": corpus(LEVER)})
    first.refresh_from_db()
    assert first.cover_blob_sha and analysis.thumbnail_path(first.cover_blob_sha).exists()
    DesignFactory(owner=alice, slug="no-mesh")
    baseline, _ = list_queries(client)
    for n in range(1, 5):  # the same blob: analysed once, a thumbnail for every design
        commit(DesignFactory(owner=alice, slug=f"part-{n}"), {"part.stl": corpus(LEVER)})

    with_more, page = list_queries(client)

    assert with_more == baseline
    for n in range(5):
        thumbnail = reverse("design-thumbnail", args=["alice", f"part-{n}", first.cover_blob_sha])
        assert f'src="{thumbnail}"' in page
    assert page.count('class="design-thumb"') == 6  # the design without a mesh gets a blank box


def test_a_cover_whose_thumbnail_is_missing_shows_a_blank_box(client, alice, knob):
    Design.objects.filter(pk=knob.pk).update(cover_blob_sha="0" * 40)

    page = client.get(reverse("design-list")).content.decode()

    assert 'class="design-thumb"' in page
    assert "/thumbnail/" not in page


def test_a_file_listing_shows_mesh_thumbnails_with_one_query_for_all(client, alice, commit):
    design = DesignFactory(owner=alice, slug="printer")
    commit(design, {"parts/knob.stl": corpus(KNOB), "parts/notes.txt": "read me\n"})
    url = reverse("design-tree", args=["alice", "printer", "parts"])
    with CaptureQueriesContext(connection) as one_mesh:
        client.get(url)
    commit(design, {"parts/lever.stl": corpus(LEVER), "parts/idler.stl": corpus("y-belt-idler.stl")})

    with CaptureQueriesContext(connection) as three_meshes:
        page = client.get(url).content.decode()

    assert len(three_meshes) == len(one_mesh)
    assert page.count('class="file-thumb"') == 3
    detail = client.get(reverse("design-detail", args=["alice", "printer"])).content.decode()
    assert 'class="file-thumb"' not in detail  # the root holds only a folder


def test_the_compare_page_shows_both_versions_of_a_changed_mesh(client, alice, commit, background_tasks_run):
    design = DesignFactory(owner=alice, slug="lever")
    first = commit(design, {"lever.stl": corpus(LEVER)}, message="First lever")
    old_sha = blob_sha(design, "lever.stl")
    second = commit(design, {"lever.stl": corpus("extruder-idler.stl")}, message="Another lever")
    new_sha = blob_sha(design, "lever.stl")

    url = reverse("design-compare", args=["alice", "lever"])
    page = client.get(url, {"base": first, "head": second}).content.decode()
    commit_page = client.get(reverse("design-commit", args=["alice", "lever", second])).content.decode()

    for content in (page, commit_page):
        assert f'data-old="{data_url(design, old_sha)}"' in content
        assert f'data-new="{data_url(design, new_sha)}"' in content
        assert "Before" in content and "After" in content and "Change" in content
        assert "Geometric comparison" in content and "No geometric comparison" not in content
        assert "hub/viewer.js" in content


def test_a_diff_says_in_words_that_a_version_is_still_being_analysed(client, alice, commit):
    design = DesignFactory(owner=alice, slug="lever")
    commit(design, {"lever.stl": corpus(LEVER)})
    second = commit(design, {"lever.stl": corpus(KNOB)})
    MeshAnalysis.objects.filter(blob_sha=blob_sha(design, "lever.stl")).update(status="pending", figures=None)

    page = client.get(reverse("design-commit", args=["alice", "lever", second])).content.decode()

    assert "The new version</strong> is being analysed — reload in a moment" in page
    assert "data-old=" in page and "data-new=" not in page


def test_a_diff_hands_the_alignment_it_found_to_the_3d_view(client, alice, commit):
    design = DesignFactory(owner=alice, slug="lever")
    lever = corpus(LEVER)
    first = commit(design, {"lever.stl": lever})
    old_sha = blob_sha(design, "lever.stl")
    second = commit(design, {"lever.stl": turned_stl(lever, TURN_X_180, [30.0, 0.0, 10.0])})
    BlobDiff.objects.update_or_create(
        old_sha=old_sha,
        new_sha=blob_sha(design, "lever.stl"),
        differ="geometry:stl:stl",
        defaults={
            "status": "done",
            "new_path": "lever.stl",
            "detail": {
                "aligned": True,
                "alignment_rotation": TURN_X_180,
                "alignment_rotation_deg": 180.0,
                "alignment_shift_mm": [30.0, 0.0, 10.0],
                "hausdorff_mm": 0.0,
            },
        },
    )

    page = client.get(reverse("design-compare", args=["alice", "lever"]), {"base": first, "head": second})

    transform = page.context["files"][0]["mesh"]["old_transform"]
    assert json.loads(transform) == {"rotation": TURN_X_180, "shift": [30.0, 0.0, 10.0]}
    assert "data-old-transform=" in page.content.decode()
    assert "180.0°" in page.content.decode()


def test_the_first_commit_of_a_mesh_shows_it_alone(client, alice, commit):
    design = DesignFactory(owner=alice, slug="lever")
    sha = commit(design, {"lever.stl": corpus(LEVER), "bad.stl": b"not a mesh\n"})

    page = client.get(reverse("design-commit", args=["alice", "lever", sha])).content.decode()

    assert f'data-new="{data_url(design, blob_sha(design, "lever.stl"))}"' in page
    assert "data-old=" not in page
    assert "The new version</strong>: the analysis failed" in page
