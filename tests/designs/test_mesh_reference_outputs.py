"""The outputs of mesh analysis and geometric diffs stay the same, byte for byte, through
the guarded worker: the figures, thumbnail PNG, viewer triangles and their extra data of
every corpus mesh, and the geometric diffs of corpus pairs, each compared with its
SHA-256 recorded from the code as it was before the worker was made faster (issue 18).

A change that is meant to change an output records them again, in the same commit and
with the reason in its message:

    .venv/bin/python tests/designs/test_mesh_reference_outputs.py --record
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus" / "meshes"
RECORDED = Path(__file__).parent / "data" / "mesh_reference_outputs.json"

FILES = sorted(
    str(path.relative_to(CORPUS))
    for path in CORPUS.rglob("*")
    if path.is_file() and not path.name.startswith(".") and path.suffix.lower() != ".md"
)
# Pairs compared as a diff page compares them: different versions of one part, a part
# against another, a mesh against another format, and a file against itself.
PAIRS = [
    ("prusa-i3/extruder-body.2017-03-13.stl", "prusa-i3/extruder-body.2017-11-29.stl"),
    ("trimesh-models/20mm-xyz-cube.stl", "trimesh-models/7_8ths_cube.stl"),
    ("prusa-i3/fs-lever.stl", "prusa-i3/y-belt-idler.stl"),
    ("trimesh-models/featuretype.3MF", "trimesh-models/counterX.3MF"),
    ("trimesh-models/teapot.stl", "trimesh-models/fuze.ply"),
    ("trimesh-models/multibody.stl", "trimesh-models/multibody.stl"),
    ("trimesh-models/tet.ply", "trimesh-models/empty.stl"),
]
TIME_LIMIT_S = 120
MEMORY_LIMIT_BYTES = 3 * 1024**3


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_digest(value: object) -> str:
    return _digest(json.dumps(value, sort_keys=True, allow_nan=False).encode())


def analysis_outputs(folder: Path) -> dict[str, dict[str, str]]:
    """Each corpus file's outputs from one batch of the guarded worker, as digests (or its
    failure reason)."""
    from designs.meshes.worker import MeshJob, run_batch

    jobs = []
    for number, path in enumerate(FILES):
        sha = f"{number:040x}"
        jobs.append(
            MeshJob(
                sha=sha,
                path=path,
                data_file=str(CORPUS / path),
                thumbnail_file=str(folder / f"{sha}.png"),
                viewer_file=str(folder / f"{sha}.bin"),
            )
        )
    outcomes = {
        outcome.sha: outcome
        for outcome in run_batch(
            jobs, time_limit_s=TIME_LIMIT_S, memory_limit_bytes=MEMORY_LIMIT_BYTES, keep_warm=True
        )
    }
    found: dict[str, dict[str, str]] = {}
    for job in jobs:
        outcome = outcomes[job.sha]
        if outcome.figures is None:
            found[job.path] = {"reason": outcome.reason or ""}
            continue
        found[job.path] = {"figures": _json_digest(outcome.figures)}
        for output, file in (
            ("thumbnail", Path(job.thumbnail_file)),
            ("viewer", Path(job.viewer_file)),
            ("extra", Path(job.viewer_file).with_suffix(".extra")),
        ):
            found[job.path][output] = _digest(file.read_bytes()) if file.exists() else "missing"
    return found


def diff_outputs(pairs: list[tuple[str, str]] = PAIRS) -> dict[str, str]:
    """Each pair's geometric diff from one batch of the guarded worker, as a digest (or
    its reason). The distances are refined for as long as it takes (geometric_diff stops
    refining after 5 s, which a loaded machine can reach on the larger pairs): the
    outputs are then the same on any machine, and the same as those recorded, each of
    which was refined in full."""
    from designs.meshes.worker import DiffJob, run_diffs

    jobs = [
        DiffJob(f"{old} -> {new}", str(CORPUS / old), str(CORPUS / new), old, new, time_budget_s=600.0)
        for old, new in pairs
    ]
    found = {}
    for outcome in run_diffs(jobs, time_limit_s=600, memory_limit_bytes=MEMORY_LIMIT_BYTES):
        assert outcome.diff is None or outcome.diff["exact_refinement"]
        found[outcome.sha] = (
            _json_digest(outcome.diff) if outcome.diff is not None else f"reason: {outcome.reason}"
        )
    return found


def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def test_there_is_a_recorded_output_for_every_corpus_file_and_pair():
    outputs = recorded()
    assert sorted(outputs["analyses"]) == FILES
    assert sorted(outputs["diffs"]) == sorted(f"{old} -> {new}" for old, new in PAIRS)
    # Most files give all four outputs; the few that fail give their reason.
    assert sum("thumbnail" in found for found in outputs["analyses"].values()) >= 20


def test_every_corpus_file_gives_the_recorded_figures_thumbnail_and_viewer_data(tmp_path):
    expected = recorded()["analyses"]
    found = analysis_outputs(tmp_path)
    for path in FILES:
        assert found[path] == expected[path], path


def test_every_corpus_pair_gives_the_recorded_geometric_diff():
    assert diff_outputs() == recorded()["diffs"]


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parents[2]))
    with tempfile.TemporaryDirectory() as folder:
        RECORDED.parent.mkdir(exist_ok=True)
        outputs = {"analyses": analysis_outputs(Path(folder)), "diffs": diff_outputs()}
        RECORDED.write_text(json.dumps(outputs, indent=1, sort_keys=True) + "\n")
    count = sum(len(found) for found in outputs["analyses"].values()) + len(outputs["diffs"])
    print(f"recorded {count} outputs in {RECORDED}")
