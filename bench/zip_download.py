"""ZIP download of a ~500 MB design, most of it Git LFS objects (issue 13 §4: "a 500 MB
design downloads with the worker growing by at most 50 MB").

The hub serves the design under gunicorn (1 worker, 4 threads); a streaming client
downloads /<owner>/<design>/archive/main.zip while a thread samples the worker's
resident memory every 20 ms. The baseline, in the same run, is Python's zipfile
compressing the same files straight from disk into a null sink, with the compression the
hub uses (deflate, default level). Prints times, MB/s, the ratio hub / baseline and the
worker's memory growth; exits non-zero if the worker grew by more than 50 MB or the ZIP
is not the design's files byte for byte.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from _django import best_of, setup

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
LFS_FILES, LFS_SIZE = 10, 48 * MB  # over the threshold: stored as LFS objects
GIT_BINARIES, GIT_BINARY_SIZE = 2, 8 * MB  # under it: plain git blobs
TEXT_FILES = 40
LFS_THRESHOLD = 10 * MB
CHUNK = 256 * 1024  # as the hub reads and writes ZIP members
RUNS = 3
GROWTH_LIMIT_MB = 50
SAMPLE_SECONDS = 0.02
DOWNLOAD_DEADLINE = 600.0  # seconds per download; far above the expected ~1 minute


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for offset in range(0, size, 4 * MB):
            block = os.urandom(min(4 * MB, size - offset))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def make_design_files(folder: Path) -> dict[str, str]:
    """The design's files on disk: relative path -> sha256."""
    files = {}
    for n in range(LFS_FILES):
        files[f"cad/body-{n:02d}.step"] = write_random(folder / f"cad/body-{n:02d}.step", LFS_SIZE)
    for n in range(GIT_BINARIES):
        files[f"firmware/board-{n}.bin"] = write_random(folder / f"firmware/board-{n}.bin", GIT_BINARY_SIZE)
    for n in range(TEXT_FILES):
        text = "".join(f"translate([{i}, {n}, 0]) cube([{i % 7 + 1}, 10, 2]);\n" for i in range(50 + n * 20))
        path = folder / f"parts/part-{n:02d}.scad"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[f"parts/part-{n:02d}.scad"] = hashlib.sha256(text.encode()).hexdigest()
    return files


class NullSink(io.RawIOBase):
    """A write-only, unseekable stream that keeps nothing, as the hub's response is."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)


def zip_from_disk(folder: Path, paths: list[str]) -> int:
    """The baseline: the files zipped as the hub does (deflate, zip64, data descriptors)."""
    sink = NullSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for path in paths:
            info = zipfile.ZipInfo(f"baseline/{path}", date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with (folder / path).open("rb") as source, archive.open(info, "w", force_zip64=True) as member:
                shutil.copyfileobj(source, member, CHUNK)
    return sink.size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_hub(env: dict, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    args = [str(gunicorn), "hub.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    args += ["--workers", "1", "--threads", "4", "--timeout", "600"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            return proc, port
        except urllib.error.HTTPError:
            return proc, port  # it answers: up
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-2000:]}")


def worker_pid(master: subprocess.Popen) -> int:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


class RssSampler(threading.Thread):
    """The largest VmRSS of a process, read every SAMPLE_SECONDS until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = memory_mb(pid, "VmRSS")
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + DOWNLOAD_DEADLINE + 60
        while not self.stopped.is_set() and time.monotonic() < deadline:
            self.peak = max(self.peak, memory_mb(self.pid, "VmRSS"))
            self.samples += 1
            self.stopped.wait(SAMPLE_SECONDS)

    def stop(self) -> float:
        self.stopped.set()
        self.join(timeout=5)
        return self.peak


def reset_peak(pid: int) -> bool:
    """Reset the kernel's VmHWM of `pid`, so it records this download's peak alone: a
    cross-check on the sampler, which could miss a spike shorter than 20 ms."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def download(port: int, path: str, *, to: Path | None = None) -> tuple[float, int, str]:
    """GET `path` streamed, into `to` or nowhere; returns seconds, bytes and sha256."""
    digest = hashlib.sha256()
    size = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {response.read(500)!r}")
        with open(to or os.devnull, "wb") as out:
            while chunk := response.read(MB):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if time.perf_counter() - start > DOWNLOAD_DEADLINE:
                    raise RuntimeError(f"GET {path} took over {DOWNLOAD_DEADLINE:.0f} s")
    finally:
        connection.close()
    return time.perf_counter() - start, size, digest.hexdigest()


def check_archive(archive_path: Path, folder: str, expected: dict[str, str]) -> int:
    """Every file of the design in the ZIP with its real bytes; returns the member count."""
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
        wanted = {f"{folder}/{path}" for path in expected}
        missing = wanted - names
        extra = names - wanted - {f"{folder}/.gitattributes"}  # written by the hub for LFS
        if missing or extra:
            raise RuntimeError(
                f"ZIP members differ: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
            )
        for path, sha256 in expected.items():
            digest = hashlib.sha256()
            with archive.open(f"{folder}/{path}") as member:
                while chunk := member.read(MB):
                    digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise RuntimeError(f"{path} in the ZIP is not the committed file (an LFS pointer?)")
        return len(names)


def main() -> int:
    os.environ["FABHUB_LFS_THRESHOLD_BYTES"] = str(LFS_THRESHOLD)
    data_dir = setup()
    from django.core.files import File
    from django.core.files.base import ContentFile

    from designs import selectors, services
    from hub.models import User

    scratch = Path(tempfile.mkdtemp(prefix="fabhub-bench-zip-"))
    hub = None
    try:
        started = time.perf_counter()
        source = scratch / "files"
        expected = make_design_files(source)
        total = sum((source / path).stat().st_size for path in expected)
        user = User.objects.create_user("bench", password="bench-password")
        design = services.design_create(owner=user, slug="rover", title="Rover", licence="MIT")
        handles = {path: (source / path).open("rb") for path in expected}
        try:
            uploads = [
                services.Upload(path=p, content=File(h, name=Path(p).name)) for p, h in handles.items()
            ]
            sha = services.design_commit(design=design, author=user, message="Rover", uploads=uploads)
        finally:
            for handle in handles.values():
                handle.close()
        in_lfs = sum(
            selectors.design_lfs_pointer(design, entry) is not None
            for entry in design.repo.ls_tree(sha, recursive=True)
        )
        if in_lfs != LFS_FILES:
            raise RuntimeError(f"{in_lfs} files went to LFS, expected {LFS_FILES}")
        warm = services.design_create(owner=user, slug="washer", title="Washer", licence="MIT")
        services.design_commit(
            design=warm,
            author=user,
            message="Washer",
            uploads=[services.Upload(path="washer.scad", content=ContentFile(b"cylinder(3);\n", name="w"))],
        )
        print(
            f"zip download: {total / MB:.0f} MB design ({LFS_FILES} LFS files x {LFS_SIZE // MB} MB, "
            f"{GIT_BINARIES} git blobs x {GIT_BINARY_SIZE // MB} MB, {TEXT_FILES} text files), "
            f"built in {time.perf_counter() - started:.1f} s"
        )

        paths = sorted(expected)
        baseline_bytes = 0

        def baseline() -> None:
            nonlocal baseline_bytes
            baseline_bytes = zip_from_disk(source, paths)

        baseline_time = best_of(RUNS, baseline)

        hub_env = {
            "DEBUG": "0",
            "SECRET_KEY": "bench",
            "FABHUB_DATA_DIR": str(data_dir),
            "ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SETTINGS_MODULE": "hub.settings",
        }
        hub, port = start_hub(hub_env, scratch / "gunicorn.log")
        # Warm the worker (imports, first connection, a small ZIP) before measuring memory.
        download(port, "/bench/washer/archive/main.zip")
        pid = worker_pid(hub)
        rss_before = memory_mb(pid, "VmRSS")
        hwm_reset = reset_peak(pid)

        url = "/bench/rover/archive/main.zip"
        times, peaks, digests = [], [], set()
        samples = 0
        zip_bytes = members = 0
        for run in range(RUNS):
            sampler = RssSampler(pid)
            sampler.start()
            target = scratch / "rover.zip" if run == 0 else None
            try:
                seconds, zip_bytes, digest = download(port, url, to=target)
            finally:
                peaks.append(sampler.stop())
                samples += sampler.samples
            times.append(seconds)
            digests.add(digest)
            if target is not None:
                members = check_archive(target, "rover-main", expected)
                target.unlink()
        hwm = memory_mb(pid, "VmHWM") if hwm_reset else None
        rss_after = memory_mb(pid, "VmRSS")
        if len(digests) != 1:
            raise RuntimeError(f"the {RUNS} downloads differ: {len(digests)} distinct sha256")
    finally:
        if hub is not None:
            hub.terminate()
            try:
                hub.wait(timeout=15)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait(timeout=15)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)

    hub_time = min(times)
    peak = max([*peaks, hwm or 0.0])
    growth = peak - rss_before
    print(f"{'best of ' + str(RUNS):<40}{'time':>9}{'MB/s':>8}{'ZIP MB':>8}{'ratio':>8}")
    rows = (
        ("zipfile from disk (baseline)", baseline_time, baseline_bytes),
        ("hub GET /bench/rover/archive/main.zip", hub_time, zip_bytes),
    )
    for label, seconds, size in rows:
        print(
            f"{label:<40}{seconds:>8.2f}s{total / MB / seconds:>8.1f}{size / MB:>8.1f}"
            f"{seconds / baseline_time:>7.2f}x"
        )
    print("(MB/s of design content; deflate at the default level for both)")
    per_run = ", ".join(f"{p:.0f}" for p in peaks)
    hwm_text = f"; kernel VmHWM {hwm:.0f} MB" if hwm is not None else ""
    print(
        f"hub worker RSS: {rss_before:.0f} MB before, peak {peak:.0f} MB over {RUNS} downloads, "
        f"{rss_after:.0f} MB after ({samples:,} samples, one every {SAMPLE_SECONDS * 1000:.0f} ms, "
        f"peaks {per_run} MB{hwm_text})"
    )
    print(
        f"ZIP: {zip_bytes:,} bytes, {members} members, each file's sha256 that of the file committed "
        f"(LFS objects as their content); all {RUNS} downloads identical"
    )
    verdict = "ok" if growth <= GROWTH_LIMIT_MB else "FAIL"
    print(f"worker growth: {growth:+.0f} MB (limit +{GROWTH_LIMIT_MB} MB): {verdict}")
    return 0 if growth <= GROWTH_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
