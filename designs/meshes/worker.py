"""Runs mesh analyses in a child process with time and memory limits.

A hostile or huge file must not take the worker down with it: the child sets an address
space limit (an allocation past it is a MemoryError, reported as such) and an alarm per
file; if the child still dies (killed, crashed), the file it was on fails with that
reason and a fresh child takes the rest. One child serves a whole batch, so 1,000 small
meshes cost one Python start, not 1,000.

Protocol: one JSON job per line on the child's stdin, one JSON result per line on its
stdout, each preceded by a `{"started": sha}` line so the parent knows the culprit.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from designs import meshes

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MeshJob:
    sha: str
    path: str  # the file name in the design: decides the format
    data_file: str  # where the content was written for the child to read
    thumbnail_file: str  # where the child writes the PNG
    viewer_file: str = ""  # where the child writes the viewer's triangles
    units: str | None = None


@dataclass(frozen=True)
class MeshOutcome:
    sha: str
    figures: dict | None
    reason: str | None  # why it failed, in words

    @property
    def ok(self) -> bool:
        return self.figures is not None


class AnalysisTimeout(Exception):
    pass


def run_batch(jobs: list[MeshJob], *, time_limit_s: int, memory_limit_bytes: int) -> Iterator[MeshOutcome]:
    """Analyse every job; yield one outcome per job, whatever happens to the child."""
    remaining = list(jobs)
    while remaining:
        child = subprocess.Popen(
            [sys.executable, "-m", "designs.meshes.worker", str(time_limit_s), str(memory_limit_bytes)],
            cwd=PROJECT_ROOT,
            env=_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stdin, stdout = child.stdin, child.stdout
        assert stdin is not None and stdout is not None  # both PIPE
        for job in remaining:
            stdin.write(json.dumps(job.__dict__) + "\n")
        stdin.close()
        current: str | None = None
        done: set[str] = set()
        # The alarm cannot interrupt a long call into C: past twice the limit, kill.
        watchdog: threading.Timer | None = None
        killed_by_watchdog = threading.Event()

        def kill_child(child=child, killed=killed_by_watchdog) -> None:
            killed.set()
            child.kill()

        for line in stdout:
            message = json.loads(line)
            if watchdog is not None:
                watchdog.cancel()
            if "started" in message:
                current = message["started"]
                watchdog = threading.Timer(time_limit_s * 2 + 5, kill_child)
                watchdog.start()
                continue
            done.add(message["sha"])
            current = None
            yield MeshOutcome(message["sha"], message.get("figures"), message.get("reason"))
        code = child.wait()
        if watchdog is not None:
            watchdog.cancel()
        if current is not None:
            done.add(current)
            if killed_by_watchdog.is_set():
                reason = f"the analysis took longer than the {time_limit_s} s allowed"
            else:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                reason = f"the analyser stopped while reading this file ({how})"
            yield MeshOutcome(current, None, reason)
        elif code != 0 and not done:
            # The child died before starting anything: fail all rather than loop forever.
            for job in remaining:
                yield MeshOutcome(job.sha, None, f"the analyser could not start (exit code {code})")
            return
        remaining = [job for job in remaining if job.sha not in done]


def _child_env() -> dict[str, str]:
    # One thread per maths library: the child's address-space limit must be spent on
    # the mesh, not on thread stacks and buffers reserved per core.
    single = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **single}


def run_diff(
    old_file: Path,
    new_file: Path,
    *,
    old_name: str,
    new_name: str,
    time_limit_s: int,
    memory_limit_bytes: int,
) -> tuple[dict | None, str | None]:
    """(geometric diff, None) or (None, why not), computed in a guarded child."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "designs.meshes.worker",
                "diff",
                str(time_limit_s),
                str(memory_limit_bytes),
                str(old_file),
                str(new_file),
                old_name,
                new_name,
            ],
            cwd=PROJECT_ROOT,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=time_limit_s * 2 + 10,
        )
    except subprocess.TimeoutExpired:
        return None, f"the comparison took longer than the {time_limit_s} s allowed"
    if done.returncode != 0 or not done.stdout.strip():
        return None, f"the comparison stopped (exit code {done.returncode})"
    message = json.loads(done.stdout.strip().splitlines()[-1])
    return message.get("diff"), message.get("reason")


# A tetrahedron: analysing it once before the limit loads every library the analysis
# imports lazily, so that code is mapped before the address space is capped.
_WARM_UP_STL = (
    b"solid t\n"
    + b"".join(
        b"facet normal 0 0 0\nouter loop\n"
        + b"".join(b"vertex %d %d %d\n" % v for v in face)
        + b"endloop\nendfacet\n"
        for face in (
            ((0, 0, 0), (0, 1, 0), (1, 0, 0)),
            ((0, 0, 0), (1, 0, 0), (0, 0, 1)),
            ((0, 0, 0), (0, 0, 1), (0, 1, 0)),
            ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
        )
    )
    + b"endsolid t\n"
)


def _limit(time_limit_s: int, memory_limit_bytes: int) -> None:
    meshes.analyse(_WARM_UP_STL, filename="warm-up.stl")
    meshes.render_thumbnail(_WARM_UP_STL, filename="warm-up.stl", size=32)
    meshes.viewer_triangles(_WARM_UP_STL, filename="warm-up.stl")
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    def on_alarm(signum, frame):
        raise AnalysisTimeout

    signal.signal(signal.SIGALRM, on_alarm)


def _child_diff(
    time_limit_s: int, memory_limit_bytes: int, old_file: str, new_file: str, old_name: str, new_name: str
) -> None:
    _limit(time_limit_s, memory_limit_bytes)
    signal.alarm(time_limit_s)
    result: dict[str, Any]
    try:
        diff = meshes.geometric_diff(
            Path(old_file).read_bytes(), Path(new_file).read_bytes(), old_name=old_name, new_name=new_name
        )
        result = {"diff": diff}
    except meshes.MeshError as exc:
        result = {"reason": exc.reason}
    except AnalysisTimeout:
        result = {"reason": f"the comparison took longer than the {time_limit_s} s allowed"}
    except MemoryError:
        result = {"reason": "the comparison needed more memory than allowed"}
    # allow_nan=False: a NaN that slipped past require_finite fails here, loudly, rather
    # than reaching a JSON column as the invalid token NaN.
    print(json.dumps(result, allow_nan=False), flush=True)


def _write_quietly(target: str, produce) -> None:
    try:
        content = produce()
    except meshes.MeshError:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    temporary.write_bytes(content)
    temporary.replace(path)  # readers never see half a file


def _memory_reason(memory_limit_bytes: int) -> str:
    return f"the analysis needed more than the {memory_limit_bytes / 1024**3:.1f} GB of memory allowed"


def _child(time_limit_s: int, memory_limit_bytes: int) -> None:
    _limit(time_limit_s, memory_limit_bytes)
    for line in sys.stdin:
        job = MeshJob(**json.loads(line))
        print(json.dumps({"started": job.sha}), flush=True)
        result: dict = {"sha": job.sha}
        signal.alarm(time_limit_s)
        try:
            data = Path(job.data_file).read_bytes()
            figures = meshes.analyse(data, filename=job.path, units=job.units)
            result["figures"] = figures.to_dict()
            # Figures without a picture or a 3D view are still worth keeping.
            _write_quietly(job.thumbnail_file, partial(meshes.render_thumbnail, data, filename=job.path))
            if job.viewer_file:
                _write_quietly(job.viewer_file, partial(meshes.viewer_triangles, data, filename=job.path))
        except meshes.MeshError as exc:
            result["reason"] = exc.reason
        except AnalysisTimeout:
            result["reason"] = f"the analysis took longer than the {time_limit_s} s allowed"
        except MemoryError:
            result["reason"] = _memory_reason(memory_limit_bytes)
        except Exception as exc:  # noqa: BLE001 — one bad file must not stop the batch
            # Past the address-space cap, loading code fails too ("failed to map segment").
            if "failed to map segment" in str(exc) or "Cannot allocate memory" in str(exc):
                result["reason"] = _memory_reason(memory_limit_bytes)
            else:
                result["reason"] = f"the file could not be analysed ({type(exc).__name__}: {exc})"[:500]
        finally:
            signal.alarm(0)
        print(json.dumps(result, allow_nan=False), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "diff":
        _child_diff(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:8])
    else:
        _child(int(sys.argv[1]), int(sys.argv[2]))
