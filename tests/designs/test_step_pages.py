"""A STEP file committed to a design: analysed in the background, shown on its file page and
in the API with figures, thumbnail and 3D view, and compared geometrically between versions
on the compare page and in the API's diff, as an STL is."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from designs import selectors
from designs.models import BlobDiff, Design, MeshAnalysis
from designs.services import analysis
from tests.factories import DesignFactory, commit_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("background_tasks_run")]
CAD = Path(__file__).parents[2].parent / "shared" / "corpus" / "cad" / "prusa-i3-step"
BODY_2019 = (CAD / "extruder-body.2019-07-25.stp").read_bytes()
BODY_2020 = (CAD / "extruder-body.2020-12-07.stp").read_bytes()


def blob_sha(design: Design, path: str) -> str:
    return selectors.design_file(design, rev=None, path=path)[1].sha


@pytest.fixture
def extruder(alice) -> tuple[Design, str, str]:
    """A design whose extruder body was committed twice: (design, first commit, second)."""
    design = DesignFactory(owner=alice, slug="extruder", title="Extruder")
    first = commit_files(design, {"parts/body.stp": BODY_2019, "README.md": "# Extruder\n"}, "First body")
    second = commit_files(design, {"parts/body.stp": BODY_2020}, "Body of December 2020")
    return Design.objects.get(pk=design.pk), first, second


@pytest.fixture
def body(alice) -> Design:
    """A design holding the extruder body of December 2020."""
    design = DesignFactory(owner=alice, slug="extruder", title="Extruder")
    commit_files(design, {"parts/body.stp": BODY_2020, "README.md": "# Extruder\n"})
    return Design.objects.get(pk=design.pk)


def test_a_committed_step_file_is_analysed_with_exact_figures_a_thumbnail_and_3d_data(body):
    design = body
    row = MeshAnalysis.objects.get(blob_sha=blob_sha(design, "parts/body.stp"))

    assert row.status == MeshAnalysis.Status.DONE, row.reason
    assert row.figures["format"] == "step" and row.figures["exact"] is True
    assert row.figures["volume_mm3"] == pytest.approx(28553.3, abs=0.05)
    assert analysis.thumbnail_path(row.blob_sha).read_bytes().startswith(b"\x89PNG")
    assert analysis.viewer_path(row.blob_sha).stat().st_size == 36 * row.figures["triangles"]
    design.refresh_from_db()
    assert design.cover_blob_sha == row.blob_sha  # a STEP file can stand for the design


def test_the_file_page_of_a_step_file_shows_its_figures_and_the_3d_view(client, body):
    design = body
    sha = blob_sha(design, "parts/body.stp")

    page = client.get(reverse("design-blob", args=["alice", "extruder", "parts/body.stp"])).content.decode()

    assert f'data-new="{reverse("design-mesh-data", args=["alice", "extruder", sha])}"' in page
    assert "<canvas" in page and "hub/viewer.js" in page
    for label in ("Size (bounding box)", "Oriented size", "Volume", "Estimated mass", "PLA"):
        assert label in page
    assert "28.55 cm³" in page
    assert "ISO-10303-21" not in page  # not shown as text
    data = client.get(reverse("design-mesh-data", args=["alice", "extruder", sha]))
    assert (
        len(b"".join(data.streaming_content))
        == 36 * MeshAnalysis.objects.get(blob_sha=sha).figures["triangles"]
    )


def test_the_api_lists_a_step_file_with_figures_thumbnail_and_fit(alice_api, body):
    url = reverse("api-design-meshes", args=["alice", "extruder"])

    (item,) = alice_api.get(url).json()["files"]

    assert item["path"] == "parts/body.stp" and item["status"] == "done"
    assert item["figures"]["solids"] == 1 and item["figures"]["watertight"] is True
    assert item["figures"]["size"] == pytest.approx([62.0, 84.5, 20.0], abs=0.01)
    assert alice_api.get(item["thumbnail_url"]).status_code == 200
    assert alice_api.get(url, {"build_volume": "250x210x210"}).json()["files"][0]["fits"] is True
    assert alice_api.get(url, {"build_volume": "50x50x50"}).json()["files"][0]["fits"] is False


def test_the_compare_page_shows_a_geometric_diff_of_the_two_extruder_bodies(client, extruder):
    design, first, second = extruder

    page = client.get(reverse("design-compare", args=["alice", "extruder"]), {"base": first, "head": second})

    row = BlobDiff.objects.get()
    assert row.differ == "geometry:stp:stp" and row.status == BlobDiff.Status.DONE, row.reason
    assert row.detail["hausdorff_mm"] > 1.0 and not row.detail["identical"]
    content = page.content.decode()
    assert "Geometric comparison" in content and "No geometric comparison" not in content
    assert "data-old=" in content and "data-new=" in content


def test_the_api_diff_of_the_two_extruder_bodies_is_geometric(alice_api, extruder):
    _, first, second = extruder

    body = alice_api.get(
        reverse("api-design-diff", args=["alice", "extruder"]), {"base": first, "head": second}
    )

    (change,) = body.json()["files"]
    assert change["kind"] == "mesh"
    assert change["detail"]["old"]["figures"]["volume_mm3"] == pytest.approx(27520.6, abs=0.05)
    assert change["detail"]["new"]["figures"]["volume_mm3"] == pytest.approx(28553.3, abs=0.05)
    geometry = change["detail"]["geometry"]
    assert geometry, change["detail"].get("geometry_reason")
    assert geometry["hausdorff_mm"] > 1.0 and geometry["regions"]


def test_a_hostile_step_file_fails_with_its_reason_on_its_page(client, alice):
    design = DesignFactory(owner=alice, slug="loop")
    looped = (
        b"ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\n"
        b"#1=ORIENTED_EDGE('',*,*,#2,.T.);\n#2=ORIENTED_EDGE('',*,*,#1,.T.);\nENDSEC;\nEND-ISO-10303-21;\n"
    )
    commit_files(design, {"loop.step": looped, "fine.stp": BODY_2020})

    assert MeshAnalysis.objects.get(path="fine.stp").status == MeshAnalysis.Status.DONE
    page = client.get(reverse("design-blob", args=["alice", "loop", "loop.step"])).content.decode()
    assert "the analysis failed" in page
    assert "the file&#x27;s entities refer to each other in a loop (#1 → #2 → #1)" in page
