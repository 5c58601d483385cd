"""Runs mesh analyses in child processes with time and memory limits.

A hostile or huge file must take down neither the worker nor its neighbours in a batch.
A *server* process imports the analysis code once and forks guarded children from
itself, each analysing one file at a time: a child sets an address-space limit (an
allocation past it is a MemoryError, reported as such) and an alarm per file; a child
that ran out of memory or time reports that file and ends. If a child still dies
(killed, crashed) or overruns twice its limit, the file it was on fails with that
reason. Either way a fresh child, forked in milliseconds, takes the next files. Several
children run at once (one per core by default), so 1,000 small meshes keep every core
busy and cost one Python start-up, not 1,000.

The same children compare two files (a geometric diff) when the job says so, under the
same guards, so a diff page's comparisons share a warm server as analyses do.

A server can be kept warm (`keep_warm=True`: the services do): it then stays up after a
batch, its idle children with it, and takes the next batch of the same formats without
paying Python, numpy, trimesh and scipy again (about a second of CPU each time). One
batch at a time uses a warm server; a batch that finds none idle starts another. An
idle child ends after a few seconds; an idle server after a minute.

Protocol: one JSON job per line on the server's stdin, each with its own time limit; on
its stdout a `{"started": sha}` line when a job is handed to a child, then one JSON
result line per job, in the order they finish. The parent knows from the `started`
lines which files were in hand if the server itself stops (it runs no mesh code, so only
something from outside stops it). The server ends when its stdin does.

STEP files (designs/meshes/step.py) run in the same children. OpenCASCADE writes its
messages to file descriptor 1, so no process here answers on it: the server moves its
answers to a copy of it and points 1 at /dev/null before any analysis code runs, and
the children answer on a pipe of their own.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from designs import meshes
from designs.meshes import step
from designs.meshes.base import is_step_path
from designs.meshes.diff import TIME_BUDGET_S, mesh_geometric_diff

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
class DiffJob:
    """A geometric diff of two files, run in the same children as analyses."""

    sha: str  # the job's name in the batch (a diff row's id, say): unique in it
    old_file: str
    new_file: str
    old_name: str  # the file names in the design: decide the formats
    new_name: str
    # Seconds for refining the distances: a test that compares outputs byte for byte
    # gives room enough on any machine.
    time_budget_s: float = TIME_BUDGET_S


Job = MeshJob | DiffJob


@dataclass(frozen=True)
class MeshOutcome:
    sha: str
    figures: dict | None
    reason: str | None  # why it failed, in words
    # Seconds the child spent on each step: read, figures, thumbnail, viewer.
    seconds: dict[str, float] = field(default_factory=dict)
    diff: dict | None = None  # a DiffJob's result
    # Another outcome of the batch has arrived already: a caller writing outcomes may
    # gather them (outcomes that arrive together are written together, none waits).
    more: bool = False

    @property
    def ok(self) -> bool:
        return self.figures is not None or self.diff is not None


class AnalysisTimeout(Exception):
    pass


def default_workers() -> int:
    """Files analysed at once: one per core this process may use, at most 4 (each child
    may take the whole memory limit)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def _names(job: Job) -> list[str]:
    return [job.old_name, job.new_name] if isinstance(job, DiffJob) else [job.path]


def _formats(jobs: Sequence[Job]) -> tuple[str, ...]:
    """What a server for these jobs loads: OpenCASCADE (a second and half a gigabyte of
    address space) for STEP, the mesh readers for meshes."""
    steps = [is_step_path(name) for job in jobs for name in _names(job)]
    return tuple((["step"] if any(steps) else []) + (["mesh"] if not all(steps) else []))


def _doing(job: Job | None) -> tuple[str, str]:
    """What a child does with the job, in a reason's words: (noun, what stopped)."""
    if isinstance(job, DiffJob):
        return "comparison", "the comparison stopped"
    return "analysis", "the analyser stopped while reading this file"


def run_batch(
    jobs: Sequence[Job],
    *,
    time_limit_s: int,
    memory_limit_bytes: int,
    workers: int | None = None,
    keep_warm: bool = False,
) -> Iterator[MeshOutcome]:
    """Analyse (or compare) every job; yield one outcome per job, in the order they
    finish, whatever happens to the children. With `keep_warm`, the batch runs on an idle
    warm server of the same set-up if there is one, and leaves its server warm."""
    remaining = list(jobs)
    by_sha = {job.sha: job for job in jobs}
    workers = workers or default_workers()
    while remaining:
        server = _acquire(_formats(remaining), memory_limit_bytes, workers, warm=keep_warm)
        server.submit(remaining, time_limit_s)
        done: set[str] = set()
        try:
            for outcome in server.outcomes(len(remaining)):
                done.add(outcome.sha)
                yield outcome
        finally:
            if keep_warm and len(done) == len(remaining):
                _release(server)
            else:
                server.stop()
        remaining = [job for job in remaining if job.sha not in done]
        if not remaining:
            return
        if server.reused and not done and not server.in_hand:
            # A warm server that ended while idle (killed from outside): a fresh one.
            continue
        # The server stopped early. With one file in hand, that file is the culprit, as
        # with a child; with several, they go again one at a time, so that a second stop
        # names its file.
        keep_warm = False
        if len(server.in_hand) == 1:
            (culprit,) = server.in_hand
            noun, stopped = _doing(by_sha.get(culprit))
            if server.stalled:
                reason = f"the {noun} took longer than the {time_limit_s} s allowed"
            else:
                reason = f"{stopped} ({_how(server.code)})"
            yield MeshOutcome(culprit, None, reason)
            remaining = [job for job in remaining if job.sha != culprit]
        elif not done and not server.in_hand:
            # It stopped before handing out anything: fail all rather than loop forever.
            for job in remaining:
                yield MeshOutcome(job.sha, None, f"the analyser could not start ({_how(server.code)})")
            return
        elif server.in_hand:
            workers = 1


def run_diffs(
    jobs: list[DiffJob],
    *,
    time_limit_s: int,
    memory_limit_bytes: int,
    workers: int | None = None,
    keep_warm: bool = True,
) -> Iterator[MeshOutcome]:
    """Geometric diffs of the jobs' pairs, on a warm server (several pairs at once, one
    per core); one outcome per job, `diff` or `reason` set, in the order they finish."""
    return run_batch(
        list(jobs),
        time_limit_s=time_limit_s,
        memory_limit_bytes=memory_limit_bytes,
        workers=workers,
        keep_warm=keep_warm,
    )


def run_diff(
    old_file: Path,
    new_file: Path,
    *,
    old_name: str,
    new_name: str,
    time_limit_s: int,
    memory_limit_bytes: int,
) -> tuple[dict | None, str | None]:
    """(geometric diff, None) or (None, why not), computed in a guarded child. The API
    asks for one pair inside a web request: its server is not kept warm, so web processes
    do not each hold an idle one (a hundred megabytes or more) for a minute."""
    job = DiffJob("diff", str(old_file), str(new_file), old_name, new_name)
    (outcome,) = run_diffs(
        [job], time_limit_s=time_limit_s, memory_limit_bytes=memory_limit_bytes, keep_warm=False
    )
    return outcome.diff, outcome.reason


def _how(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit code {code}"


# -- warm servers, kept per process ---------------------------------------------------------

# A warm server ends after this long without a batch: it holds a few hundred megabytes.
WARM_IDLE_S = 60.0
_warm_lock = threading.Lock()
_warm_idle: dict[tuple, list[_Server]] = {}
_warm_pid = 0


def _acquire(formats: tuple[str, ...], memory_limit_bytes: int, workers: int, *, warm: bool) -> _Server:
    global _warm_pid
    key = (formats, memory_limit_bytes, workers)
    if warm:
        with _warm_lock:
            if _warm_pid != os.getpid():
                # Forked from a process that had warm servers: those are its, not ours.
                _warm_idle.clear()
                _warm_pid = os.getpid()
            idle = _warm_idle.get(key, [])
            while idle:
                server = idle.pop()
                server.cancel_expiry()
                if server.process.poll() is None:
                    server.reused = True
                    return server
                server.stop()
    return _Server(formats, memory_limit_bytes, workers, key=key)


def _release(server: _Server) -> None:
    if server.process.poll() is not None:
        server.stop()
        return
    with _warm_lock:
        idle = _warm_idle.setdefault(server.key, [])
        if _warm_pid == os.getpid() and not idle:
            idle.append(server)
            server.expire_after(WARM_IDLE_S)
            return
    server.stop()  # one idle server per set-up is enough


def _expire(server: _Server) -> None:
    with _warm_lock:
        idle = _warm_idle.get(server.key, [])
        if server not in idle:
            return  # taken meanwhile
        idle.remove(server)
    server.stop()


def servers_started() -> int:
    """How many servers this process started (the benchmarks report it)."""
    return _Server.started


def stop_warm_servers() -> None:
    """End every warm server of this process (tests that watch a batch's own server)."""
    with _warm_lock:
        servers = [server for idle in _warm_idle.values() for server in idle]
        _warm_idle.clear()
    for server in servers:
        server.cancel_expiry()
        server.stop()


class _Server:
    """The parent's side of one server process."""

    started = 0

    def __init__(
        self, formats: tuple[str, ...], memory_limit_bytes: int, workers: int, *, key: tuple
    ) -> None:
        self.key = key
        self.reused = False
        self.time_limit_s = 0
        self.in_hand: set[str] = set()
        self.code = 0
        self.stalled = False
        self._feeder: threading.Thread | None = None
        self._expiry: threading.Timer | None = None
        _Server.started += 1
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "designs.meshes.worker",
                "60",  # each job carries its own time limit
                str(memory_limit_bytes),
                str(workers),
                *formats,
            ],
            cwd=PROJECT_ROOT,
            env=_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._unread = b""  # answers read but not yet taken, whole lines and a part

    def submit(self, jobs: Sequence[Job], time_limit_s: int) -> None:
        """Hand the server a batch; a server not kept warm is told it is the last."""
        self.time_limit_s = time_limit_s
        self.in_hand = set()
        self.stalled = False
        if self._feeder is not None:
            self._feeder.join()
        lines = []
        for job in jobs:
            line = {**job.__dict__, "limit": time_limit_s}
            if isinstance(job, DiffJob):
                line["kind"] = "diff"
            lines.append(json.dumps(line) + "\n")
        # Written from a thread: in a large batch the answers can fill their pipe before
        # every job is written, and then both sides would wait for each other.
        self._feeder = threading.Thread(target=self._feed, args=(lines,), daemon=True)
        self._feeder.start()

    def _feed(self, lines: list[str]) -> None:
        stdin = self.process.stdin
        assert stdin is not None  # PIPE
        try:
            for line in lines:
                stdin.write(line.encode())
            stdin.flush()
        except (OSError, ValueError):
            pass  # the server stopped: outcomes() sees it end

    def outcomes(self, count: int) -> Iterator[MeshOutcome]:
        """The batch's `count` outcomes, as they come; fewer if the server stops."""
        # The server kills a child that overruns twice its limit; this catches a server
        # that stops answering altogether.
        watchdog: threading.Timer | None = None
        try:
            while count:
                line = self._line()
                if not line:
                    self.code = self.process.wait()
                    return
                if watchdog is not None:
                    watchdog.cancel()
                    watchdog = None
                message = json.loads(line)
                if "started" in message:
                    self.in_hand.add(message["started"])
                else:
                    self.in_hand.discard(message["sha"])
                if self.in_hand:
                    watchdog = threading.Timer(self.time_limit_s * 2 + 30, self._kill_stalled)
                    watchdog.start()
                if "sha" in message:
                    count -= 1
                    yield MeshOutcome(
                        message["sha"],
                        message.get("figures"),
                        message.get("reason"),
                        message.get("seconds", {}),
                        message.get("diff"),
                        more=count > 0 and self._result_waiting(),
                    )
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _line(self) -> bytes:
        """The server's next answer line (empty once it has ended)."""
        stdout = self.process.stdout
        assert stdout is not None  # PIPE
        while b"\n" not in self._unread:
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                return b""
            self._unread += chunk
        line, self._unread = self._unread.split(b"\n", 1)
        return line

    def _result_waiting(self) -> bool:
        """Whether another result has arrived already (read without waiting)."""
        stdout = self.process.stdout
        assert stdout is not None  # PIPE
        while select.select([stdout.fileno()], [], [], 0)[0]:
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                break
            self._unread += chunk
        whole, _, _ = self._unread.rpartition(b"\n")
        return b'{"sha"' in whole

    def _kill_stalled(self) -> None:
        self.stalled = True
        self.process.kill()

    def expire_after(self, seconds: float) -> None:
        self._expiry = threading.Timer(seconds, _expire, args=(self,))
        self._expiry.daemon = True
        self._expiry.start()

    def cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def stop(self) -> None:
        """End the server if it still runs: told by the end of its stdin when idle (its
        idle children end with it), killed otherwise (its children end when their jobs
        run out)."""
        # The expiry timer holds this server in its arguments: dropped here, a stopped
        # server is freed by reference counting, its pipes closed at once, not left in a
        # cycle until the collector runs.
        self._expiry = None
        if self.process.poll() is None and not self.in_hand and self.process.stdin is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.code = self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


def _child_env() -> dict[str, str]:
    # One thread per maths library: the child's address-space limit must be spent on
    # the mesh, not on thread stacks and buffers reserved per core; and the server forks,
    # which threads would make unsafe.
    single = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **single}


# -- in the server and its children ------------------------------------------------------


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


# A child's exit code when memory ran out outside a file's own analysis (reading its
# job, say): the server gives the file the memory reason rather than "it stopped".
_EXIT_MEMORY = 75
# Set in a result after which its child ends: a MemoryError or the alarm can fire inside
# C code (numpy, the mesh libraries), leaving their state or the heap half changed, and
# what that file left counts against the next file's address-space cap.
_LAST = "last"


def _warm_up(*, with_meshes: bool = True, with_step: bool = False) -> int:
    """Load and run the analysis and diff code once, for meshes, STEP or both; return the
    address space (bytes) that loading OpenCASCADE's libraries and the diff's scipy parts
    took, which the children's cap grants on top of the memory limit: a mesh in a batch
    with STEP files must get the same room as in a batch without, and an analysis in a
    server that can also compare the same room as in one that cannot."""
    library = 0
    if with_meshes:
        meshes.analyse(_WARM_UP_STL, filename="warm-up.stl")
        meshes.render_thumbnail(_WARM_UP_STL, filename="warm-up.stl", size=32)
        meshes.viewer_triangles(_WARM_UP_STL, filename="warm-up.stl")
        before = _address_space()
        moved = _WARM_UP_STL.replace(b"vertex 1", b"vertex 2")
        meshes.geometric_diff(_WARM_UP_STL, moved, old_name="warm-up.stl", new_name="moved.stl", samples=100)
        library += max(_address_space() - before, 0)
    if not with_step:
        return library
    before = _address_space()
    step.load_opencascade()
    library += max(_address_space() - before, 0)
    part = step.warm_up()
    meshes.mesh_thumbnail(part.mesh, size=32)
    meshes.mesh_viewer_triangles(part.mesh)
    return library


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _answers_off_stdout() -> int:
    """A copy of file descriptor 1 to answer on; 1 itself then goes to /dev/null, where
    whatever OpenCASCADE prints (parse errors, warnings) ends up."""
    answers = os.dup(1)
    nothing = os.open(os.devnull, os.O_WRONLY)
    os.dup2(nothing, 1)
    os.close(nothing)
    return answers


def _cap(memory_limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    def on_alarm(signum, frame):
        raise AnalysisTimeout

    signal.signal(signal.SIGALRM, on_alarm)


def _compare(job: DiffJob, time_limit_s: int, memory_limit_bytes: int) -> dict:
    """The geometric diff of a job's two files."""
    result: dict[str, Any] = {"sha": job.sha}
    signal.alarm(time_limit_s)
    try:
        old, new = Path(job.old_file).read_bytes(), Path(job.new_file).read_bytes()
        if is_step_path(job.old_name) or is_step_path(job.new_name):
            # Compared through the tessellations, as the 3D view shows them.
            result["diff"] = mesh_geometric_diff(
                _part_mesh(old, job.old_name),
                _part_mesh(new, job.new_name),
                old_name=job.old_name,
                new_name=job.new_name,
                time_budget_s=job.time_budget_s,
            )
        else:
            result["diff"] = meshes.geometric_diff(
                old, new, old_name=job.old_name, new_name=job.new_name, time_budget_s=job.time_budget_s
            )
    except meshes.MeshError as exc:
        result["reason"] = exc.reason
    except AnalysisTimeout:
        result["reason"] = f"the comparison took longer than the {time_limit_s} s allowed"
        result[_LAST] = True
    except MemoryError:
        result["reason"] = "the comparison needed more memory than allowed"
        result[_LAST] = True
    except Exception as exc:  # noqa: BLE001 — one bad pair must not stop the batch
        if _out_of_memory(exc):
            result["reason"] = "the comparison needed more memory than allowed"
            result[_LAST] = True
        else:
            result["reason"] = f"the files could not be compared ({type(exc).__name__}: {exc})"[:500]
    finally:
        signal.alarm(0)
    return result


def _part_mesh(data: bytes, name: str) -> meshes.Mesh:
    """The triangles of a file: a mesh as read, a STEP file as tessellated."""
    if is_step_path(name):
        return step.read_step(data, filename=name).mesh
    return meshes.read_mesh(data, filename=name, units=None, limits=meshes.Limits())


@dataclass
class _Child:
    """The server's side of one child: the pipes, and the file in hand."""

    pid: int
    commands: int  # the pipe the child reads its jobs from
    results: int  # the pipe it answers on
    sha: str | None = None  # the file it is analysing
    job: bytes = b""  # that file's job line, to hand it to another child
    limit: int = 0  # that job's time limit, seconds
    comparing: bool = False  # that job is a diff
    deadline: float = 0.0
    idle_since: float = 0.0
    overran: bool = False
    ending: bool = False  # it said its last answer: it gets no more files
    unread: bytes = b""


# A child with nothing to do ends after this long: a warm server between batches keeps
# no children (each holds what its last file left in its heap), and forks fresh ones in
# milliseconds when the next batch comes.
CHILD_IDLE_S = 5.0


def _serve(
    time_limit_s: int,
    memory_limit_bytes: int,
    workers: int,
    *,
    with_meshes: bool = True,
    with_step: bool = False,
) -> None:
    """Hand the jobs read from stdin to at most `workers` children, one file at a time
    each; pass their results on; fail the file of a child that dies, and fork another.
    Runs until stdin ends (`time_limit_s` is for jobs that carry no limit of their own)."""
    answers = _answers_off_stdout()
    out = os.fdopen(answers, "wb")
    cap_bytes = memory_limit_bytes + _warm_up(with_meshes=with_meshes, with_step=with_step)
    pending: deque[bytes] = deque()
    children: list[_Child] = []
    retried: set[str] = set()  # files whose child crashed once: a second crash fails them
    reading, unread = True, b""
    while reading or pending or children:
        now = time.monotonic()
        for child in children:
            if child.sha is None and child.commands >= 0 and pending:
                _hand(child, pending.popleft(), time_limit_s, out)
            elif (
                child.sha is None
                and child.commands >= 0
                and (not reading or now - child.idle_since > CHILD_IDLE_S)
            ):
                os.close(child.commands)  # no more work: the child ends
                child.commands = -1
        while pending and sum(not child.ending for child in children) < workers:
            child = _fork(children, memory_limit_bytes, cap_bytes, answers)
            children.append(child)
            _hand(child, pending.popleft(), time_limit_s, out)
        wake = [child.deadline for child in children if child.sha is not None and not child.overran]
        wake += [
            child.idle_since + CHILD_IDLE_S for child in children if child.sha is None and child.commands >= 0
        ]
        timeout = max(min(wake) - time.monotonic(), 0.0) + 0.01 if wake else None
        watched = [child.results for child in children] + ([0] if reading else [])
        ready, _, _ = select.select(watched, [], [], timeout)
        if 0 in ready:
            chunk = os.read(0, 1 << 16)
            reading = bool(chunk)
            *lines, unread = (unread + chunk).split(b"\n")
            pending.extend(line for line in lines if line.strip())
        for child in [child for child in children if child.results in ready]:
            chunk = os.read(child.results, 1 << 16)
            if chunk:
                *lines, child.unread = (child.unread + chunk).split(b"\n")
                for line in lines:
                    out.write(line + b"\n")
                    retried.discard(child.sha or "")
                    child.sha = None
                    child.idle_since = time.monotonic()
                    if json.loads(line).get(_LAST) and child.commands >= 0:
                        # It ends after this file: a fresh child takes the next ones.
                        child.ending = True
                        os.close(child.commands)
                        child.commands = -1
                out.flush()
            else:
                if _bury(child, memory_limit_bytes, out, may_retry=child.sha not in retried):
                    retried.add(child.sha or "")
                    pending.appendleft(child.job)
                children.remove(child)
        for child in children:
            if child.sha is not None and not child.overran and time.monotonic() >= child.deadline:
                # The alarm cannot interrupt a long call into C: past twice the limit, kill.
                child.overran = True
                os.kill(child.pid, signal.SIGKILL)


def _hand(child: _Child, line: bytes, time_limit_s: int, out) -> None:
    job = json.loads(line)
    child.sha = job["sha"]
    child.job = line
    child.limit = int(job.get("limit", time_limit_s))
    child.comparing = job.get("kind") == "diff"
    if "limit" not in job:
        line = json.dumps({**job, "limit": child.limit}).encode()
    try:
        os.write(child.commands, line + b"\n")  # a job is far shorter than a pipe's buffer
    except BrokenPipeError:
        pass  # the child is gone: _bury fails the file it was given, as for any death
    child.deadline = time.monotonic() + child.limit * 2 + 5
    out.write(json.dumps({"started": child.sha}).encode() + b"\n")
    out.flush()


def _bury(child: _Child, memory_limit_bytes: int, out, *, may_retry: bool) -> bool:
    """Reap a child whose answers ended; fail the file it had in hand, if any. Returns
    True when that file should rather go once more to a fresh child: it crashed on a
    signal of its own (SIGSEGV, SIGBUS, SIGABRT). Under the address-space cap that is
    most often an allocation failing inside C code that does not check it, where the
    same file usually ends in a clean MemoryError the next time (seen about one run in
    six on the memory-limit test); a file that crashes twice is reported. A kill (the
    overrun guard's, or the kernel's out-of-memory killer's) is not tried again."""
    _, status = os.waitpid(child.pid, 0)
    for fd in (child.commands, child.results):
        if fd >= 0:
            os.close(fd)
    if child.sha is None:
        return False
    code = os.waitstatus_to_exitcode(status)
    if may_retry and not child.overran and code < 0 and -code != signal.SIGKILL:
        return True
    noun = "comparison" if child.comparing else "analysis"
    if child.overran:
        reason = f"the {noun} took longer than the {child.limit} s allowed"
    elif code == _EXIT_MEMORY:
        reason = (
            "the comparison needed more memory than allowed"
            if child.comparing
            else _memory_reason(memory_limit_bytes)
        )
    else:
        stopped = (
            "the comparison stopped" if child.comparing else "the analyser stopped while reading this file"
        )
        reason = f"{stopped} ({_how(code)})"
        if code < 0 and -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
            # Crashed twice under the cap: say what most likely ran out, not only the signal.
            reason += f", most likely out of the {memory_limit_bytes / 1024**3:.1f} GB of memory allowed"
    out.write(json.dumps({"sha": child.sha, "reason": reason}).encode() + b"\n")
    out.flush()
    return False


def _fork(children: list[_Child], memory_limit_bytes: int, cap_bytes: int, answers: int) -> _Child:
    commands_read, commands_write = os.pipe()
    results_read, results_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Only its own two pipe ends stay open: a sibling holding another child's pipe
        # would keep the server from seeing that child end, and one holding the server's
        # answers would keep the parent from seeing the server end.
        for fd in [
            answers,
            commands_write,
            results_read,
            *(c.commands for c in children),
            *(c.results for c in children),
        ]:
            if fd >= 0:
                os.close(fd)
        nothing = os.open(os.devnull, os.O_RDWR)
        os.dup2(nothing, 0)
        os.dup2(nothing, 1)  # only the results pipe carries answers
        _child(commands_read, results_write, memory_limit_bytes, cap_bytes)
    os.close(commands_read)
    os.close(results_write)
    return _Child(pid=pid, commands=commands_write, results=results_read, idle_since=time.monotonic())


def _child(commands: int, results: int, memory_limit_bytes: int, cap_bytes: int) -> NoReturn:
    code = 0
    try:
        _cap(cap_bytes)
        _keep_freed_heap()
        with os.fdopen(commands, "rb") as jobs, os.fdopen(results, "wb") as answers:
            for line in jobs:
                job = json.loads(line)
                limit = job.pop("limit")
                if job.pop("kind", "") == "diff":
                    result = _compare(DiffJob(**job), limit, memory_limit_bytes)
                else:
                    result = _analyse(MeshJob(**job), limit, memory_limit_bytes)
                # allow_nan=False: a NaN that slipped past require_finite fails the file
                # here, loudly, rather than reaching a JSON column as the token NaN.
                answers.write(json.dumps(result, allow_nan=False).encode() + b"\n")
                answers.flush()
                if result.get(_LAST):
                    break
    except MemoryError:
        code = _EXIT_MEMORY
    except BaseException as exc:  # noqa: BLE001 — whatever it was, the server reports the file
        code = _EXIT_MEMORY if _out_of_memory(exc) else 1
    # Not sys.exit: the buffers and exit handlers copied from the server are not ours.
    os._exit(code)


# glibc's mallopt parameter for the heap kept beyond each request.
_M_TOP_PAD = -2


def _keep_freed_heap() -> None:
    """Grow and shrink the heap 16 MB at a time. A small mesh's thumbnail allocates and
    frees arrays of a few megabytes, and the kernel mapped and zeroed them afresh each
    time: 3,800 page faults and 8 ms of system time per small mesh, as much CPU as the
    analysis itself (2 faults with this). Set in the child, after the cap: the heap's
    growth, pad included, is checked against it, so a file can never use more memory
    than allowed (near the cap, 16 MB less)."""
    ctypes.CDLL(None).mallopt(_M_TOP_PAD, 16 * 1024**2)


def _out_of_memory(exc: BaseException) -> bool:
    # Past the address-space cap, loading code fails too ("failed to map segment").
    return "failed to map segment" in str(exc) or "Cannot allocate memory" in str(exc)


def _memory_reason(memory_limit_bytes: int) -> str:
    return f"the analysis needed more than the {memory_limit_bytes / 1024**3:.1f} GB of memory allowed"


def _analyse(job: MeshJob, time_limit_s: int, memory_limit_bytes: int) -> dict:
    """The figures, thumbnail and viewer triangles of one file, read once."""
    result: dict[str, Any] = {"sha": job.sha}
    seconds: dict[str, float] = {}
    signal.alarm(time_limit_s)
    try:
        started = time.perf_counter()
        data = Path(job.data_file).read_bytes()
        if is_step_path(job.path):
            # Read, measured and tessellated in one go; the file's own unit always holds
            # (OpenCASCADE converts it), so a unit given for the path does not apply.
            part = step.read_step(data, filename=job.path)
            mesh = part.mesh
            started = _lap(seconds, "read", started)
            result["figures"] = part.figures
        else:
            mesh = meshes.read_mesh(data, filename=job.path, units=job.units, limits=meshes.Limits())
            started = _lap(seconds, "read", started)
            result["figures"] = meshes.mesh_figures(mesh).to_dict()
        started = _lap(seconds, "figures", started)
        if job.units is not None and not is_step_path(job.path):
            # The 3D view is in the unit the file declares or implies, whatever was given.
            mesh = meshes.read_mesh(data, filename=job.path, units=None, limits=meshes.Limits())
        # Figures without a picture or a 3D view are still worth keeping.
        _write_quietly(job.thumbnail_file, lambda: meshes.mesh_thumbnail(mesh))
        started = _lap(seconds, "thumbnail", started)
        if job.viewer_file:
            _write_quietly(job.viewer_file, lambda: meshes.mesh_viewer_triangles(mesh))
            # Beside the triangles: their colour groups (bodies, objects) and open edges.
            extra_file = str(Path(job.viewer_file).with_suffix(".extra"))
            _write_quietly(extra_file, lambda: meshes.mesh_viewer_extra(mesh))
            _lap(seconds, "viewer", started)
    except meshes.MeshError as exc:
        result["reason"] = exc.reason
    except AnalysisTimeout:
        result["reason"] = f"the analysis took longer than the {time_limit_s} s allowed"
        result[_LAST] = True
    except MemoryError:
        result["reason"] = _memory_reason(memory_limit_bytes)
        result[_LAST] = True
    except Exception as exc:  # noqa: BLE001 — one bad file must not stop the batch
        if _out_of_memory(exc):
            result["reason"] = _memory_reason(memory_limit_bytes)
            result[_LAST] = True
        else:
            result["reason"] = f"the file could not be analysed ({type(exc).__name__}: {exc})"[:500]
    finally:
        signal.alarm(0)
    result["seconds"] = seconds
    return result


def _lap(seconds: dict[str, float], step: str, started: float) -> float:
    now = time.perf_counter()
    seconds[step] = now - started
    return now


def _write_quietly(target: str, produce: Callable[[], bytes]) -> None:
    try:
        content = produce()
    except meshes.MeshError:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    temporary.write_bytes(content)
    temporary.replace(path)  # readers never see half a file


if __name__ == "__main__":
    formats = sys.argv[4:] or ["mesh"]
    _serve(
        int(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        with_meshes="mesh" in formats,
        with_step="step" in formats,
    )
