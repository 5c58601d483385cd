"""Mesh analysis: the hub's `designs.meshes.analyse` vs the naive trimesh pipeline.

The naive pipeline is what one would write first: `trimesh.load_mesh(path)` (which
merges vertices), then `.volume` and `.is_watertight`. Both run in this process on the
same files, best of 3 each (interleaved); then each runs once more in a child process of its own,
which reports its peak resident memory. Prints times, the ratio hub / naive (lower is
better; the goal is at most 0.5), whether the figures agree, and the figures.

    .venv/bin/python bench/meshes.py [--quick]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def wavy_torus(rings: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed torus on a rings x segments grid (2 * rings * segments triangles), in mm.

    The tube's radius ripples so that the surface is not as regular as a sphere's.
    """
    u = np.linspace(0, 2 * np.pi, rings, endpoint=False)
    v = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    tube = 12.0 + 1.5 * np.sin(7 * uu) * np.cos(3 * vv)
    vertices = np.stack(
        [(40.0 + tube * np.cos(vv)) * np.cos(uu), (40.0 + tube * np.cos(vv)) * np.sin(uu), tube * np.sin(vv)],
        axis=-1,
    ).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a = i * segments + j
    b = ((i + 1) % rings) * segments + j
    c = ((i + 1) % rings) * segments + (j + 1) % segments
    d = i * segments + (j + 1) % segments
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices, faces


def write_meshes(folder: Path) -> list[tuple[str, Path]]:
    import trimesh

    files = []
    vertices, faces = wavy_torus(1000, 500)
    torus = folder / "torus-1M.stl"
    trimesh.Trimesh(vertices, faces, process=False).export(torus)
    files.append(("wavy torus, 1,000,000 triangles", torus))
    if "--quick" not in sys.argv:
        sphere = folder / "icosphere-1.31M.stl"
        trimesh.creation.icosphere(subdivisions=8, radius=40.0).export(sphere)
        files.append(("icosphere, 1,310,720 triangles", sphere))
    return files


def hub_figures(path: Path) -> dict:
    from designs.meshes import analyse

    return analyse(path.read_bytes(), filename=path.name).to_dict()


def naive_figures(path: Path) -> dict:
    import trimesh

    mesh = trimesh.load_mesh(path)
    return {
        "triangles": len(mesh.faces),
        "vertices": len(mesh.vertices),
        "volume_mm3": float(mesh.volume),
        "watertight": bool(mesh.is_watertight),
    }


def best_of(runs: int, fn) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return min(timings)


def peak_memory_mb(kind: str, path: Path) -> float:
    """Peak resident memory of a fresh child process that runs one pipeline once."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["max_rss_mb"]


def child(kind: str, path: str) -> None:
    import scipy.sparse.csgraph  # noqa: F401 — imported by both pipelines; not part of the peak
    import trimesh  # noqa: F401

    {"hub": hub_figures, "naive": naive_figures, "imports": lambda p: None}[kind](Path(path))
    print(json.dumps({"max_rss_mb": _peak_rss_kib() / 1024}))


def _peak_rss_kib() -> int:
    # ru_maxrss would be wrong here: subprocess starts children with vfork, and the
    # kernel folds the parent's peak into the child's ru_maxrss at exec. VmHWM is the
    # peak of this process's own address space, which exec made fresh.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    import trimesh  # noqa: F401 — warm both pipelines' imports before timing

    from designs import meshes

    meshes.analyse(
        (ROOT.parent / "shared/corpus/meshes/trimesh-models/tet.ply").read_bytes(), filename="t.ply"
    )
    folder = Path(tempfile.mkdtemp(prefix="fabhub-bench-meshes-"))
    files = write_meshes(folder)
    baseline = peak_memory_mb("imports", files[0][1])
    print(f"child process after imports alone: {baseline:.0f} MB peak\n")
    print(
        f"{'mesh':<34}{'size':>8}{'hub':>9}{'naive':>9}{'ratio':>8}{'hub mem':>10}{'naive mem':>11}  same figures"
    )
    tables = []
    for label, path in files:
        hub = hub_figures(path)
        naive = naive_figures(path)
        # Interleaved, so that a burst of load from elsewhere hits both pipelines alike.
        hub_time, naive_time = float("inf"), float("inf")
        for _ in range(3):
            hub_time = min(hub_time, best_of(1, lambda p=path: hub_figures(p)))
            naive_time = min(naive_time, best_of(1, lambda p=path: naive_figures(p)))
        hub_mem = peak_memory_mb("hub", path)
        naive_mem = peak_memory_mb("naive", path)
        relative = abs(hub["volume_mm3"] - naive["volume_mm3"]) / abs(naive["volume_mm3"])
        same = relative <= 1e-6 and hub["watertight"] == naive["watertight"]
        same &= hub["triangles"] == naive["triangles"] and hub["vertices"] == naive["vertices"]
        print(
            f"{label:<34}{path.stat().st_size / 1e6:>6.1f}MB{hub_time:>8.2f}s{naive_time:>8.2f}s"
            f"{hub_time / naive_time:>7.2f}x{hub_mem:>8.0f}MB{naive_mem:>9.0f}MB  "
            f"{'yes' if same else 'NO'} (volume rel. diff {relative:.1e})"
        )
        tables.append((label, hub, naive))
    from designs.meshes import render_thumbnail

    for label, path in files:
        data = path.read_bytes()
        seconds = best_of(3, lambda d=data, p=path: render_thumbnail(d, filename=p.name))
        print(f"thumbnail 256 px of {label}: {seconds:.2f} s (best of 3)")
    for label, hub, naive in tables:
        print(f"\nfigures: {label}")
        print(f"  {'':<22}{'hub':>26}{'naive trimesh':>26}")
        for key in ("triangles", "vertices", "volume_mm3", "watertight"):
            print(f"  {key:<22}{hub[key]!s:>26}{naive[key]!s:>26}")
        for key in (
            "area_mm2",
            "bodies",
            "winding_consistent",
            "size",
            "obb_size",
            "obb_approximate",
            "degenerate_faces",
            "duplicate_faces",
            "non_manifold_edges",
            "mass_g",
        ):
            value = hub[key]
            if isinstance(value, list):
                value = " x ".join(f"{x:.2f}" for x in value)
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v:.0f} g" for k, v in value.items())
            print(f"  {key:<22}{value!s:>26}")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
