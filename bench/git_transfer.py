"""Clone and push of a design with 1,000 commits and 100 MB of binary files, and of the
real 401-commit Prusa i3 MK3S history (../shared/corpus/repos/): the hub (Django, auth,
pre-receive rules) vs plain `git http-backend`, both under gunicorn with the same
settings, in the same run. Prints times, ratios hub / plain, and the peak
memory of the hub's worker processes for a small and the big repository.

Hub and plain runs alternate, and each starts once the hub has finished the background
work of the one before (the analysis of the Prusa history's meshes runs for a minute on
2 cores): otherwise that work slows whichever runs next, plain or hub. Beside the wall
times, the CPU seconds the servers' processes (gunicorn workers, git and hook processes)
spent while the client waited, which a loaded machine disturbs less; and the CPU the hub
spent after answering (the push's follow-up work in the background).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _django import setup

ROOT = Path(__file__).resolve().parents[1]
# A real history: 401 commits of the Prusa i3 MK3S, STL and STEP files (README there).
PRUSA_BUNDLE = ROOT.parent / "shared" / "corpus" / "repos" / "prusa-i3-mk3s.bundle"
COMMITS = 1_000
BINARY_FILES = 100  # of 1 MB each, one every 10 commits
RUNS = 5


def fast_import(repo: Path, *, commits: int, binaries: int) -> None:
    every = max(commits // max(binaries, 1), 1)
    stream = []
    added = 0
    for n in range(commits):
        message = f"Revise part {n}".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"committer Bench <bench@example.org> {1_700_000_000 + n * 60} +0000\n".encode())
        stream.append(b"data %d\n%s\n" % (len(message), message))
        text = f"// revision {n}\ncube([{n % 40 + 1}, 10, 10]);\n".encode()
        stream.append(f"M 100644 inline parts/part-{n % 50:02d}.scad\n".encode())
        stream.append(b"data %d\n%s\n" % (len(text), text))
        if n % every == 0 and added < binaries:
            blob = os.urandom(1024 * 1024)
            stream.append(f"M 100644 inline cad/body-{added:03d}.bin\n".encode())
            stream.append(b"data %d\n%s\n" % (len(blob), blob))
            added += 1
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    subprocess.run(["git", "-C", str(repo), "gc", "--quiet"], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(app: str, env: dict, cwd: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [
            str(gunicorn),
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--timeout",
            "600",
        ],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    return proc, url


def worker_peak_rss_mb(master: subprocess.Popen) -> float:
    """Largest peak resident memory (VmHWM) among the master's worker processes."""
    peaks = []
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants: those still running, and (in cutime
    and cstime) those it and they have waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        # Each thread's own: a worker's git processes are started by its request threads.
        children = [
            child
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:  # it ended meanwhile; its parent's cutime counts it once reaped
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name.
    own = sum(int(value) for value in fields[11:15]) / TICKS
    return own + sum(tree_cpu(int(child)) for child in children)


def settle(
    server: subprocess.Popen, *, quiet: float = 0.05, window: float = 1.0, limit: float = 900
) -> float:
    """Wait until the server's processes are idle (under `quiet` CPU seconds in `window`);
    return the CPU seconds they spent meanwhile."""
    first = last = tree_cpu(server.pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(window)
        now = tree_cpu(server.pid)
        if now - last < quiet:
            return now - first
        last = now
    raise RuntimeError("the hub did not become idle")


@dataclass
class Run:
    wall: float
    cpu: float  # the server's CPU seconds while the client waited
    after: float  # the server's CPU seconds after answering, until idle


def timed(args: list[str], cwd: Path, server: subprocess.Popen) -> Run:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_TERMINAL_PROMPT": "0"}
    cpu = tree_cpu(server.pid)
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    cpu = tree_cpu(server.pid) - cpu
    return Run(wall, cpu, settle(server))


def load() -> str:
    return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    data_dir = setup()
    from designs import services
    from hub import services as hub_services
    from hub.models import User

    user = User.objects.create_user("bench", password="bench-password")
    _, token = hub_services.token_create(user=user, name="bench")
    big = services.design_create(owner=user, slug="big", title="Big", licence="MIT")
    small = services.design_create(owner=user, slug="small", title="Small", licence="MIT")
    started = time.perf_counter()
    fast_import(big.repo_path, commits=COMMITS, binaries=BINARY_FILES)
    fast_import(small.repo_path, commits=100, binaries=5)
    big.repo.refresh_commit_graph()
    size = sum(f.stat().st_size for f in big.repo_path.rglob("*") if f.is_file()) / 1024 / 1024
    print(
        f"git transfer: {COMMITS:,} commits, {BINARY_FILES} MB of binaries ({size:.0f} MB packed), "
        f"built in {time.perf_counter() - started:.1f} s; {load()}"
    )

    hub_env = {
        "DEBUG": "0",
        "SECRET_KEY": "bench",
        "FABHUB_DATA_DIR": str(data_dir),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SETTINGS_MODULE": "hub.settings",
    }
    hub, hub_url = start_gunicorn("hub.wsgi:application", hub_env, ROOT)
    plain, plain_url = start_gunicorn(
        "plain_backend:application", {"GIT_PROJECT_ROOT": str(data_dir / "repos" / "bench")}, ROOT / "bench"
    )
    servers = {"hub": hub, "plain": plain}
    pushing = {"hub": f"http://bench:{token}@{hub_url[7:]}/bench", "plain": plain_url}
    reading = {"hub": f"{hub_url}/bench", "plain": plain_url}
    scratch = Path(tempfile.mkdtemp(prefix="fabhub-bench-git-"))
    prusa = scratch / "prusa.git"
    if PRUSA_BUNDLE.exists():
        subprocess.run(["git", "init", "--quiet", "--bare", str(prusa)], check=True)
        subprocess.run(
            ["git", "--git-dir", str(prusa), "fetch", "--quiet", str(PRUSA_BUNDLE), "MK3S:main"], check=True
        )
    results: dict[str, dict[str, list[Run]]] = {}

    def measure(op: str, command) -> None:
        """RUNS runs of `command(label, run)` (the git arguments and folder) against each
        server, alternating, each from an idle hub."""
        runs: dict[str, list[Run]] = {"hub": [], "plain": []}
        for run in range(RUNS):
            for label in ("hub", "plain") if run % 2 == 0 else ("plain", "hub"):
                args, cwd = command(label, run)
                settle(hub)
                runs[label].append(timed(args, cwd, servers[label]))
        results[op] = runs
        print(f"  {op} done; {load()}", flush=True)

    def push(source: Path, prefix: str):
        def command(label: str, run: int) -> tuple[list[str], Path]:
            slug = f"{prefix}-{label}-{run}"
            services.design_create(owner=user, slug=slug, title=slug, licence="MIT")
            return ["git", "push", "-q", f"{pushing[label]}/{slug}.git", "main"], source

        return command

    def clone(slug: str, prefix: str):
        def command(label: str, run: int) -> tuple[list[str], Path]:
            target = scratch / f"{prefix}-{label}-{run}"
            shutil.rmtree(target, ignore_errors=True)
            return ["git", "clone", "-q", "--bare", f"{reading[label]}/{slug}.git", str(target)], scratch

        return command

    try:
        # Warm both servers (imports, first connection) before measuring.
        timed(["git", "ls-remote", f"{hub_url}/bench/small.git"], scratch, hub)
        timed(["git", "ls-remote", f"{plain_url}/small.git"], scratch, plain)
        timed(["git", "clone", "-q", "--bare", f"{hub_url}/bench/small.git", "small-hub"], scratch, hub)
        small_peak = worker_peak_rss_mb(hub)

        measure("clone", clone("big", "big-clone"))
        big_clone_peak = worker_peak_rss_mb(hub)
        measure("push", push(scratch / "big-clone-hub-0", "push"))
        big_push_peak = worker_peak_rss_mb(hub)
        if prusa.exists():
            measure("push prusa", push(prusa, "prusa"))
            measure("clone prusa", clone("prusa-hub-0", "prusa-clone"))
    finally:
        hub.terminate()
        plain.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"{'':<13}{'hub':>7}{'plain':>7}{'ratio':>7}  {'CPU hub':>7}{'plain':>7}{'ratio':>7}"
        f"  {'hub after':>9}  every run: hub / plain wall (server CPU) s"
    )
    for op in ("clone", "push", "clone prusa", "push prusa"):
        if op not in results:
            print(f"{op}: skipped, no {PRUSA_BUNDLE}")
            continue
        hub_runs, plain_runs = results[op]["hub"], results[op]["plain"]
        h, p = min(r.wall for r in hub_runs), min(r.wall for r in plain_runs)
        hc, pc = min(r.cpu for r in hub_runs), min(r.cpu for r in plain_runs)
        after = max(r.after for r in hub_runs)
        every = "  ".join(
            f"{a.wall:.2f}({a.cpu:.2f})/{b.wall:.2f}({b.cpu:.2f})"
            for a, b in zip(hub_runs, plain_runs, strict=True)
        )
        print(
            f"{op:<13}{h:>6.2f}s{p:>6.2f}s{h / p:>6.2f}x  {hc:>6.2f}s{pc:>6.2f}s{hc / pc:>6.2f}x  {after:>8.2f}s  {every}"
        )
    print(
        f"best of {RUNS} (wall, and server CPU while the client waited); 'hub after': the most CPU the hub "
        "spent after answering one run (background work)"
    )
    print(
        f"hub worker peak RSS: {small_peak:.0f} MB after cloning a 5 MB design, "
        f"{big_clone_peak:.0f} MB after cloning the {size:.0f} MB one, {big_push_peak:.0f} MB after pushing it"
    )


if __name__ == "__main__":
    main()
