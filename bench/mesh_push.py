"""1,000 small meshes in one push: analyses per second; then the same files pushed again
(under other names, in another commit): all cached by blob sha, so near-zero work.

The push is written with git fast-import and announced through services.design_pushed,
exactly what the smart-HTTP receive path calls once git has accepted a push.

Then where the time went, from the first push itself: the CPU seconds of this process
and of its children (analysis servers and their children, git; the warm server is ended
after the push so that its CPU time is counted), what that CPU time allows on idle cores
(the machine is shared: the wall time depends on what else runs, the CPU time much
less), the steps `analyses_run` logs for each batch (claim, blob reads, database
writes, and each step in the children, summed over the children working side by side),
and the start-up of one analysis server (Python, numpy/trimesh/scipy imports, warm-up),
paid once per server started (one, kept warm across the batches).

Last, the outputs are checked: every 20th mesh's figures (as stored), thumbnail, viewer
triangles and their extra data are compared, byte for byte, with what designs.meshes
computes for the same file in this process.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import time

from _django import setup

MESHES = 1_000


def small_meshes() -> list[bytes]:
    import trimesh

    parts = []
    for n in range(MESHES):
        box = trimesh.creation.box(extents=(10 + n % 37, 5 + n % 11, 3 + n % 7))
        box.apply_translation((n, 0, 0))  # every file different: 1,000 distinct blobs
        parts.append(box.export(file_type="stl"))
    return parts


def fast_import(repo: str, files: dict[str, bytes], message: str, first: bool) -> None:
    stream = [b"commit refs/heads/main\n", b"committer Bench <b@x> 1700000000 +0000\n"]
    stream.append(b"data %d\n%s\n" % (len(message), message.encode()))
    if not first:
        stream.append(b"from refs/heads/main^0\n")
    for path, data in files.items():
        stream.append(f"M 100644 inline {path}\n".encode())
        stream.append(b"data %d\n%s\n" % (len(data), data))
    subprocess.run(["git", "-C", repo, "fast-import", "--quiet"], input=b"".join(stream), check=True)


class StepTotals(logging.Handler):
    """Adds up the seconds per step that analyses_run logs for each batch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}
        self.batches = 0

    def emit(self, record: logging.LogRecord) -> None:
        steps = getattr(record, "mesh_seconds", None)
        if steps is None:
            return
        self.batches += 1
        for step, spent in steps.items():
            self.seconds[step] = self.seconds.get(step, 0.0) + spent


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its children that ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def server_start_up() -> float:
    """Wall seconds for one analysis server to start, import, warm up and end (no jobs)."""
    from designs.meshes.worker import PROJECT_ROOT

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "designs.meshes.worker", "60", str(3 * 1024**3), "1"],
        cwd=PROJECT_ROOT,
        env=env,
        input=b"",
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    setup()
    from django.test.utils import override_settings

    from designs import services
    from designs.meshes.worker import servers_started, stop_warm_servers
    from designs.models import MeshAnalysis
    from hub.models import User

    user = User.objects.create_user("bench", password="bench-password")
    design = services.design_create(owner=user, slug="farm", title="Farm", licence="MIT")
    meshes = small_meshes()
    repo = str(design.repo_path)

    # Tasks run inline here (as Celery's eager mode does), so the clock covers the work.
    with override_settings(FABHUB_EMBEDDED_WORKER=False, CELERY_TASK_ALWAYS_EAGER=True):
        before = design.repo.refs()
        fast_import(
            repo, {f"parts/part-{n:04d}.stl": data for n, data in enumerate(meshes)}, "1,000 parts", True
        )
        steps = StepTotals()
        logging.getLogger("designs.services.analysis").addHandler(steps)
        own_before, children_before = cpu_seconds()
        servers_before = servers_started()
        started = time.perf_counter()
        services.design_pushed(design=design, refs_before=before)
        first = time.perf_counter() - started
        servers = servers_started() - servers_before
        stop_warm_servers()  # its CPU time (and its children's) counts once it has ended
        own_after, children_after = cpu_seconds()
        logging.getLogger("designs.services.analysis").removeHandler(steps)
        done = MeshAnalysis.objects.filter(status="done").count()

        before = design.repo.refs()
        fast_import(
            repo, {f"copies/part-{n:04d}.stl": data for n, data in enumerate(meshes)}, "Same parts", False
        )
        started = time.perf_counter()
        services.design_pushed(design=design, refs_before=before)
        again = time.perf_counter() - started
    assert MeshAnalysis.objects.count() == MESHES

    print(f"{'1,000 small meshes in one push':<44}{'time':>9}{'per s':>10}")
    print(f"{'first push: analyse all (figures, thumbnail, 3D)':<44}{first:>8.2f}s{done / first:>9.0f}/s")
    print(f"{'same blobs pushed again (cached by sha)':<44}{again:>8.3f}s{'':>10}")
    print(
        f"ratio again / first: {again / first:.4f}  ({done} done, "
        f"{MeshAnalysis.objects.filter(status='failed').count()} failed, "
        f"{MeshAnalysis.objects.count() - MESHES} analysed twice)"
    )
    print(f"goal: at least 60 analyses/s; this run {done / first:.0f}/s on {os.cpu_count()} cores")

    own, children = own_after - own_before, children_after - children_before
    cores = len(os.sched_getaffinity(0))
    floor = (own + children) / cores
    print(
        f"CPU time of the first push: {own + children:.1f} s; on {cores} idle cores at best {floor:.1f} s, "
        f"{done / floor:.0f} analyses/s (load average now {os.getloadavg()[0]:.1f})"
    )
    start_up = min(server_start_up() for _ in range(3))
    print(
        f"\nwhere the first push's time went ({steps.batches} batches, {servers} servers started, {done} meshes)"
    )
    print(f"  {'':<54}{'seconds':>9}{'ms/mesh':>9}")
    rows = [
        ("CPU, this process (push, claims, blob reads, writes)", own),
        ("CPU, children (analysis servers and children, git)", children),
        ("analysis server start-up, wall, best of 3 (x servers)", start_up * servers),
    ]
    rows += [(f"{step} (sum over batches)", spent) for step, spent in steps.seconds.items()]
    for label, spent in rows:
        print(f"  {label:<54}{spent:>9.2f}{spent / max(done, 1) * 1000:>9.2f}")
    print(
        "  (child steps are summed over the children working side by side; "
        "analysis (wall) is the batches' elapsed time from hand-over to last result)"
    )
    same_outputs(meshes)


def same_outputs(meshes: list[bytes]) -> None:
    """Every 20th mesh's stored outputs against designs.meshes run in this process."""
    import hashlib
    import json

    from designs import meshes as analysis
    from designs.models import MeshAnalysis
    from designs.selectors import thumbnail_path, viewer_path

    checked = differing = 0
    for data in meshes[::20]:
        sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        row = MeshAnalysis.objects.get(blob_sha=sha)
        mesh = analysis.read_mesh(data, filename="part.stl", units=None, limits=analysis.Limits())
        expected = [
            json.loads(json.dumps(analysis.mesh_figures(mesh).to_dict())),  # as a JSON column holds it
            analysis.mesh_thumbnail(mesh),
            analysis.mesh_viewer_triangles(mesh),
            analysis.mesh_viewer_extra(mesh),
        ]
        viewer = viewer_path(sha)
        found = [
            row.figures,
            thumbnail_path(sha).read_bytes(),
            viewer.read_bytes(),
            viewer.with_suffix(".extra").read_bytes(),
        ]
        checked += 1
        differing += found != expected
    verdict = "all the same" if not differing else f"{differing} DIFFER"
    print(f"\noutputs of {checked} meshes (every 20th) against this process's own: {verdict}")


if __name__ == "__main__":
    main()
