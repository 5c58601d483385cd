"""Clone and push of a design with 1,000 commits and 100 MB of binary files, and of the
real 401-commit Prusa i3 MK3S history (../shared/corpus/repos/): the hub (Django, auth,
pre-receive rules) vs plain `git http-backend`, both under gunicorn with the same
settings, in the same run. Prints times, ratios hub / plain, and the peak
memory of the hub's worker processes for a small and the big repository.
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
from pathlib import Path

from _django import setup

ROOT = Path(__file__).resolve().parents[1]
# A real history: 401 commits of the Prusa i3 MK3S, STL and STEP files (README there).
PRUSA_BUNDLE = ROOT.parent / "shared" / "corpus" / "repos" / "prusa-i3-mk3s.bundle"
COMMITS = 1_000
BINARY_FILES = 100  # of 1 MB each, one every 10 commits
RUNS = 3


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


def timed(args: list[str], cwd: Path) -> float:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_TERMINAL_PROMPT": "0"}
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


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
        f"built in {time.perf_counter() - started:.1f} s"
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
    scratch = Path(tempfile.mkdtemp(prefix="fabhub-bench-git-"))
    prusa = scratch / "prusa.git"
    if PRUSA_BUNDLE.exists():
        subprocess.run(["git", "init", "--quiet", "--bare", str(prusa)], check=True)
        subprocess.run(
            ["git", "--git-dir", str(prusa), "fetch", "--quiet", str(PRUSA_BUNDLE), "MK3S:main"], check=True
        )
    try:
        # Warm both servers (imports, first connection) before measuring.
        timed(["git", "ls-remote", f"{hub_url}/bench/small.git"], scratch)
        timed(["git", "ls-remote", f"{plain_url}/small.git"], scratch)
        timed(["git", "clone", "-q", "--bare", f"{hub_url}/bench/small.git", "small-hub"], scratch)
        small_peak = worker_peak_rss_mb(hub)

        results = {}
        for label, url in (("hub", f"{hub_url}/bench/big.git"), ("plain", f"{plain_url}/big.git")):
            times = []
            for run in range(RUNS):
                target = scratch / f"{label}-{run}"
                times.append(timed(["git", "clone", "-q", "--bare", url, str(target)], scratch))
                if run:
                    shutil.rmtree(target)
            results[f"clone {label}"] = min(times)
        big_clone_peak = worker_peak_rss_mb(hub)

        source = scratch / "hub-0"
        for label, base in (("hub", f"http://bench:{token}@{hub_url[7:]}/bench"), ("plain", plain_url)):
            times = []
            for run in range(RUNS):
                slug = f"push-{label}-{run}"
                services.design_create(owner=user, slug=slug, title=slug, licence="MIT")
                times.append(timed(["git", "push", "-q", f"{base}/{slug}.git", "main"], source))
            results[f"push {label}"] = min(times)
        big_push_peak = worker_peak_rss_mb(hub)

        if prusa.exists():
            for label, base in (("hub", f"http://bench:{token}@{hub_url[7:]}/bench"), ("plain", plain_url)):
                times = []
                for run in range(RUNS):
                    slug = f"prusa-{label}-{run}"
                    services.design_create(owner=user, slug=slug, title=slug, licence="MIT")
                    times.append(timed(["git", "push", "-q", f"{base}/{slug}.git", "main"], prusa))
                results[f"push prusa {label}"] = min(times)
            for label, url in (
                ("hub", f"{hub_url}/bench/prusa-hub-0.git"),
                ("plain", f"{plain_url}/prusa-hub-0.git"),
            ):
                times = []
                for run in range(RUNS):
                    target = scratch / f"prusa-clone-{label}-{run}"
                    times.append(timed(["git", "clone", "-q", "--bare", url, str(target)], scratch))
                    shutil.rmtree(target)
                results[f"clone prusa {label}"] = min(times)
    finally:
        hub.terminate()
        plain.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{'':<26}{'hub':>9}{'plain':>9}{'ratio':>8}")
    for op in ("clone", "push", "clone prusa", "push prusa"):
        if f"{op} hub" not in results:
            print(f"{op}: skipped, no {PRUSA_BUNDLE}")
            continue
        h, p = results[f"{op} hub"], results[f"{op} plain"]
        print(f"{op + ' (best of 3)':<26}{h:>8.2f}s{p:>8.2f}s{h / p:>7.2f}x")
    print(
        f"hub worker peak RSS: {small_peak:.0f} MB after cloning a 5 MB design, "
        f"{big_clone_peak:.0f} MB after cloning the {size:.0f} MB one, {big_push_peak:.0f} MB after pushing it"
    )


if __name__ == "__main__":
    main()
