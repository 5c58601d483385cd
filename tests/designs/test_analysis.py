"""Mesh analysis as background work: once per blob, guarded, swept, shown in the API."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from designs import selectors, services
from designs.lfs_store import pointer_text
from designs.meshes.worker import MeshJob, run_batch
from designs.models import MeshAnalysis
from designs.services import analysis
from tests.factories import DesignFactory, commit_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("background_tasks_run")]
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "meshes"
KNOB = (CORPUS / "prusa-i3" / "LCD-knob.stl").read_bytes()
IDLER = (CORPUS / "prusa-i3" / "extruder-idler.stl").read_bytes()


def test_a_committed_mesh_is_analysed_with_its_figures_and_pictures(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"parts/knob.stl": KNOB, "notes.txt": "not a mesh"})
    row = MeshAnalysis.objects.get()
    assert row.status == MeshAnalysis.Status.DONE, row.reason
    assert row.path == "parts/knob.stl"
    assert row.figures["triangles"] > 100 and row.figures["volume_mm3"] > 0
    assert analysis.thumbnail_path(row.blob_sha).read_bytes().startswith(b"\x89PNG")
    assert analysis.viewer_path(row.blob_sha).stat().st_size == 36 * row.figures["triangles"]


def test_a_blob_is_analysed_once_across_commits_branches_and_forks(alice, bob):
    design = DesignFactory(owner=alice)
    commit_files(design, {"knob.stl": KNOB})
    services.branch_create(design=design, user=alice, name="variant")
    commit_files(design, {"copy/knob.stl": KNOB, "readme.md": "same part again"}, branch="variant")
    fork = services.design_fork(design=design, user=bob)
    commit_files(fork, {"elsewhere/knob.stl": KNOB})
    other = DesignFactory(owner=bob)
    commit_files(other, {"knob-too.stl": KNOB})
    assert MeshAnalysis.objects.count() == 1
    assert MeshAnalysis.objects.get().attempts == 1


def test_a_broken_file_fails_with_a_reason_and_the_next_file_is_still_analysed(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"a-broken.stl": b"solid x\n facet nonsense\nendsolid\n", "b-idler.stl": IDLER})
    broken = MeshAnalysis.objects.get(path="a-broken.stl")
    assert broken.status == MeshAnalysis.Status.FAILED
    assert broken.reason and "Traceback" not in broken.reason
    assert MeshAnalysis.objects.get(path="b-idler.stl").status == MeshAnalysis.Status.DONE


def test_the_time_limit_fails_the_file_not_the_batch(tmp_path):
    """A file whose analysis outlasts the limit fails saying so; the next file is analysed.

    A million random triangles take seconds to analyse, so a 1 s limit must cut them
    short; the same batch under a generous limit proves the file itself is fine."""
    big = tmp_path / "big.stl"
    import numpy as np

    count = 1_000_000
    records = np.zeros(count, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    records["v"] = np.random.default_rng(1).random((count, 3, 3), dtype=np.float32)
    big.write_bytes(b"\0" * 80 + np.uint32(count).tobytes() + records.tobytes())
    small = tmp_path / "small.stl"
    small.write_bytes(KNOB)
    jobs = [
        MeshJob("a" * 40, "big.stl", str(big), str(tmp_path / "a.png")),
        MeshJob("b" * 40, "knob.stl", str(small), str(tmp_path / "b.png")),
    ]

    limited = {o.sha: o for o in run_batch(jobs, time_limit_s=1, memory_limit_bytes=3 * 1024**3)}
    assert not limited["a" * 40].ok
    assert limited["a" * 40].reason == "the analysis took longer than the 1 s allowed"
    assert limited["b" * 40].ok and limited["b" * 40].reason is None

    unlimited = {o.sha: o for o in run_batch(jobs, time_limit_s=120, memory_limit_bytes=3 * 1024**3)}
    assert unlimited["a" * 40].ok and unlimited["a" * 40].reason is None


def test_the_memory_limit_fails_the_file_with_a_reason(tmp_path):
    data = tmp_path / "knob.stl"
    data.write_bytes(KNOB)
    job = MeshJob("c" * 40, "knob.stl", str(data), str(tmp_path / "c.png"))
    (outcome,) = run_batch([job], time_limit_s=30, memory_limit_bytes=200 * 1024**2)
    assert not outcome.ok
    # Past the cap, Python raises MemoryError, or an allocation fails inside C code and the
    # child crashes (twice: the worker tries a crashed file once more): either way the
    # reason names the memory allowed.
    assert outcome.reason in (
        "the analysis needed more than the 0.2 GB of memory allowed",
        "the analyser stopped while reading this file (signal 11), most likely out of the 0.2 GB of memory allowed",
    )
    (roomy,) = run_batch([job], time_limit_s=30, memory_limit_bytes=3 * 1024**3)
    assert roomy.ok and roomy.reason is None


def test_the_sweeper_puts_back_an_analysis_whose_worker_died(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"knob.stl": KNOB})
    row = MeshAnalysis.objects.get()
    MeshAnalysis.objects.filter(pk=row.pk).update(
        status=MeshAnalysis.Status.RUNNING, figures=None, started_at=timezone.now() - timedelta(hours=1)
    )
    assert analysis.analyses_sweep_stale() == 1
    row.refresh_from_db()
    assert row.status == MeshAnalysis.Status.DONE and row.attempts == 2


def test_the_sweeper_gives_up_after_repeated_deaths(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"knob.stl": KNOB})
    MeshAnalysis.objects.update(
        status=MeshAnalysis.Status.RUNNING,
        attempts=analysis.MAX_ATTEMPTS,
        started_at=timezone.now() - timedelta(hours=1),
    )
    analysis.analyses_sweep_stale()
    row = MeshAnalysis.objects.get()
    assert row.status == MeshAnalysis.Status.FAILED and "interrupted" in row.reason


def test_the_api_lists_meshes_with_figures_thumbnail_and_fit(alice, alice_api):
    design = DesignFactory(owner=alice, slug="knob")
    commit_files(design, {"knob.stl": KNOB})
    url = reverse("api-design-meshes", args=["alice", "knob"])
    (item,) = alice_api.get(url).json()["files"]
    assert item["status"] == "done" and item["figures"]["watertight"] is True
    assert item["thumbnail_url"].endswith(f"/alice/knob/thumbnail/{item['blob_sha']}.png")
    assert alice_api.get(item["thumbnail_url"]).status_code == 200
    assert alice_api.get(url, {"build_volume": "250x210x210"}).json()["files"][0]["fits"] is True
    assert alice_api.get(url, {"build_volume": "5x5x5"}).json()["files"][0]["fits"] is False
    assert alice_api.get(url, {"build_volume": "big"}).status_code == 400


def test_thumbnails_of_private_designs_are_hidden_from_strangers(alice, bob_api):
    design = DesignFactory(owner=alice, slug="secret", visibility="private")
    commit_files(design, {"knob.stl": KNOB})
    sha = MeshAnalysis.objects.get().blob_sha
    assert bob_api.get(reverse("design-thumbnail", args=["alice", "secret", sha])).status_code == 404


def test_the_design_cover_is_a_mesh_of_the_default_branch(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"b.stl": IDLER, "a.stl": KNOB})
    design.refresh_from_db()
    assert design.cover_blob_sha == MeshAnalysis.objects.get(path="a.stl").blob_sha


def test_the_geometric_diff_of_two_versions_is_computed_once_and_cached(alice, alice_api):
    design = DesignFactory(owner=alice, slug="extruder")
    old = commit_files(
        design, {"body.stl": (CORPUS / "prusa-i3" / "extruder-body.2017-03-13.stl").read_bytes()}
    )
    new = commit_files(
        design, {"body.stl": (CORPUS / "prusa-i3" / "extruder-body.2017-11-29.stl").read_bytes()}
    )
    url = reverse("api-design-diff", args=["alice", "extruder"])
    (body,) = alice_api.get(url, {"base": old, "head": new}).json()["files"]
    assert body["kind"] == "mesh"
    assert body["detail"]["old"]["status"] == "done" and body["detail"]["new"]["status"] == "done"
    assert body["detail"]["geometry"], body["detail"].get("geometry_reason")
    from designs.models import BlobDiff

    assert BlobDiff.objects.count() == 1
    alice_api.get(url, {"base": old, "head": new})
    assert BlobDiff.objects.count() == 1


def test_a_push_queues_analysis_only_for_the_new_blobs(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"knob.stl": KNOB})
    before = design.repo.refs()
    commit = commit_files(design, {"idler.stl": IDLER, "knob-again.stl": KNOB})
    # design_pushed is what the git receive path calls; here the refs moved by a commit.
    MeshAnalysis.objects.filter(path="idler.stl").delete()
    assert services.design_pushed(design=design, refs_before=before) == [commit]
    assert set(MeshAnalysis.objects.values_list("path", flat=True)) == {"knob.stl", "idler.stl"}


def test_units_declared_in_gitattributes_rescale_the_figures(alice, alice_api):
    design = DesignFactory(owner=alice, slug="imperial")
    commit_files(design, {"knob.stl": KNOB})
    url = reverse("api-design-meshes", args=["alice", "imperial"])
    (in_mm,) = alice_api.get(url).json()["files"]
    commit_files(design, {".gitattributes": "*.stl fabhub-units=inch\n"}, "Drawn in inches")
    (in_inch,) = alice_api.get(url).json()["files"]
    assert MeshAnalysis.objects.count() == 1  # same blob: no new analysis, only new units
    assert in_inch["figures"]["units"] == "inch"
    assert in_inch["figures"]["size"][0] == pytest.approx(in_mm["figures"]["size"][0] * 25.4)
    assert in_inch["figures"]["volume_mm3"] == pytest.approx(in_mm["figures"]["volume_mm3"] * 25.4**3)


def test_blobs_read_together_are_written_as_one_by_one_resolving_lfs_where_served(
    alice, bob, settings, tmp_path
):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 4 * 1024
    data = os.urandom(5 * 1024)
    oid = hashlib.sha256(data).hexdigest()
    design = DesignFactory(owner=alice)
    commit_files(
        design,
        {
            "lfs.stl": data,
            "lying.stl": pointer_text(oid, len(data) + 1),
            "knob.stl": KNOB,
            "t.obj": b"v 0 0 0\n",
        },
    )
    other = DesignFactory(owner=bob)
    commit_files(other, {"stolen.stl": pointer_text(oid, len(data))})
    missing = "0" * 40  # written as design_blob_to_file writes it too (empty)

    for of in (design, other):
        shas = [entry.sha for entry in of.repo.tree_entries(of.repo.branch_head("main"))] + [missing]
        together = selectors.design_blobs_to_files(
            of, {sha: tmp_path / f"together-{of.pk}-{sha}" for sha in shas}
        )
        assert together == set(shas)
        for sha in shas:
            selectors.design_blob_to_file(of, blob_sha=sha, target=tmp_path / f"alone-{of.pk}-{sha}")
            assert (tmp_path / f"together-{of.pk}-{sha}").read_bytes() == (
                tmp_path / f"alone-{of.pk}-{sha}"
            ).read_bytes()
    lfs_sha = design.repo.entry(design.repo.branch_head("main"), "lfs.stl").sha
    assert (tmp_path / f"together-{design.pk}-{lfs_sha}").read_bytes() == data
    assert (tmp_path / f"together-{other.pk}-{lfs_sha}").read_bytes() == pointer_text(oid, len(data))


def test_a_batch_claims_only_the_rows_still_pending(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"knob.stl": KNOB, "idler.stl": IDLER})
    knob, idler = MeshAnalysis.objects.order_by("path").reverse()
    MeshAnalysis.objects.filter(pk=knob.pk).update(status=MeshAnalysis.Status.PENDING, figures=None)
    MeshAnalysis.objects.filter(pk=idler.pk).update(status=MeshAnalysis.Status.RUNNING, figures=None)

    assert analysis.analyses_run(analysis_ids=[knob.pk, idler.pk]) == 1

    knob.refresh_from_db()
    idler.refresh_from_db()
    assert knob.status == MeshAnalysis.Status.DONE and knob.attempts == 2
    assert idler.status == MeshAnalysis.Status.RUNNING and idler.attempts == 1
