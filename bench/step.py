"""STEP analysis: the hub's guarded child processes vs OpenCASCADE's raw calls.

The corpus' five Original Prusa i3 parts (../shared/corpus/cad/prusa-i3-step/) go through
`designs.meshes.worker.run_batch` as the hub runs it: a fresh server process that imports
the analysis code and OpenCASCADE, forks children under the memory cap, and writes for
each file its figures, thumbnail and 3D-view triangles. The baseline is a fresh Python
process that imports OpenCASCADE and makes the raw calls on the same files: read and
transfer, volume, area, the exact bounding box, and the tessellation with the same
deflection. Both pay their imports; the sides alternate, for --rounds rounds (default 2).

Prints, per round, both wall times and the ratio hub / raw (goal: at most 1.2), with the
hub both with its default number of children (one per core, up to 4) and with one child
(the raw side is one process, so this is the like-for-like ratio); the peak resident
memory of each side (the hub's: its largest process); and per part the triangles of the
tessellation and the seconds each side spent on it.

    .venv/bin/python bench/step.py [--rounds N]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus" / "cad" / "prusa-i3-step"
FILES = sorted(CORPUS.glob("*.stp"))

RAW = """
import json, resource, sys, time
started = time.perf_counter()
from OCP.Bnd import Bnd_Box
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepGProp import BRepGProp
from OCP.BRepMesh import BRepMesh_IncrementalMesh
from OCP.BRep import BRep_Tool
from OCP.GProp import GProp_GProps
from OCP.STEPControl import STEPControl_Reader
from OCP.TopAbs import TopAbs_FACE
from OCP.TopExp import TopExp_Explorer
from OCP.TopLoc import TopLoc_Location
from OCP.TopoDS import TopoDS
share, angle = float(sys.argv[1]), float(sys.argv[2])
parts = {}
for path in sys.argv[3:]:
    began = time.perf_counter()
    reader = STEPControl_Reader()
    reader.ReadFile(path)
    reader.TransferRoots()
    shape = reader.OneShape()
    volume, area = GProp_GProps(), GProp_GProps()
    BRepGProp.VolumeProperties_s(shape, volume)
    BRepGProp.SurfaceProperties_s(shape, area)
    box = Bnd_Box()
    BRepBndLib.AddOptimal_s(shape, box, False, False)
    low, high = box.CornerMin(), box.CornerMax()
    diagonal = low.Distance(high)
    BRepMesh_IncrementalMesh(shape, diagonal * share, False, angle, False)
    triangles = 0
    faces = TopExp_Explorer(shape, TopAbs_FACE)
    while faces.More():
        mesh = BRep_Tool.Triangulation_s(TopoDS.Face(faces.Current()), TopLoc_Location())
        triangles += mesh.NbTriangles() if mesh is not None else 0
        faces.Next()
    parts[path] = {"seconds": time.perf_counter() - began, "triangles": triangles, "volume_mm3": volume.Mass()}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"parts": parts, "peak_bytes": peak, "inside_s": time.perf_counter() - started}))
"""

HUB = """
import json, resource, sys, tempfile, time
from pathlib import Path
from designs.meshes.worker import MeshJob, run_batch
workers = int(sys.argv[1])
work = Path(tempfile.mkdtemp(prefix="bench-step-"))
jobs = [
    MeshJob(sha=str(n), path=Path(p).name, data_file=p, thumbnail_file=str(work / f"{n}.png"),
            viewer_file=str(work / f"{n}.bin"))
    for n, p in enumerate(sys.argv[2:])
]
started = time.perf_counter()
parts = {}
for outcome in run_batch(jobs, time_limit_s=300, memory_limit_bytes=3 * 1024**3, workers=workers):
    figures = outcome.figures or {}
    parts[sys.argv[2 + int(outcome.sha)]] = {
        "seconds": sum(outcome.seconds.values()), "steps": outcome.seconds, "reason": outcome.reason,
        "triangles": figures.get("triangles"), "volume_mm3": figures.get("volume_mm3"),
    }
wall = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"parts": parts, "peak_bytes": peak, "wall_s": wall}))
"""


def run_raw() -> tuple[float, dict]:
    from designs.meshes.step import ANGULAR_DEFLECTION_RAD, DEFLECTION_SHARE

    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RAW, str(DEFLECTION_SHARE), str(ANGULAR_DEFLECTION_RAD), *map(str, FILES)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    wall = time.perf_counter() - started
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def run_hub(workers: int) -> tuple[float, dict]:
    """The hub's wall time is run_batch's, from the call to the last answer: the server
    and its imports included, this wrapper's own start-up not (the hub's task worker has
    the worker module loaded already)."""
    done = subprocess.run(
        [sys.executable, "-c", HUB, str(workers), *map(str, FILES)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["wall_s"], result


def main() -> None:
    from designs.meshes.worker import default_workers

    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
    workers = default_workers()
    print(f"STEP analysis of {len(FILES)} corpus parts; hub with {workers} children and with 1 child")
    for number in range(1, rounds + 1):
        raw_s, raw = run_raw()
        hub_s, hub = run_hub(workers)
        one_s, one = run_hub(1)
        print(
            f"round {number}: raw {raw_s:.2f} s (peak {raw['peak_bytes'] / 2**20:.0f} MB) | "
            f"hub, {workers} children {hub_s:.2f} s ({hub_s / raw_s:.2f}x) | "
            f"hub, 1 child {one_s:.2f} s ({one_s / raw_s:.2f}x, peak {one['peak_bytes'] / 2**20:.0f} MB)"
        )
        for path in FILES:
            mine, theirs = one["parts"][str(path)], raw["parts"][str(path)]
            if mine["reason"]:
                print(f"    {path.name}: FAILED {mine['reason']}")
                continue
            steps = ", ".join(f"{k} {v:.2f}" for k, v in mine["steps"].items())
            agree = abs(mine["volume_mm3"] - theirs["volume_mm3"]) <= 1e-6 * abs(theirs["volume_mm3"])
            print(
                f"    {path.name:30} triangles hub {mine['triangles']:>6,} raw {theirs['triangles']:>6,} | "
                f"hub {mine['seconds']:.2f} s ({steps}) raw {theirs['seconds']:.2f} s | "
                f"volume {'agrees' if agree else 'DIFFERS'}"
            )


if __name__ == "__main__":
    main()
