"""Committing 100 files of 1 MB in one upload: hub vs `git add` + `git commit`.

Both start from the same 100 files already on disk (as Django's upload handler leaves
them). The hub figure is measured twice: the service alone, and a whole multipart
upload through the API (request parsing included). Ratios are hub / plain git.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _django import setup

FILES = 100
SIZE = 1024 * 1024
RUNS = 3


def make_files(folder: Path, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(FILES):
        path = folder / f"part-{n:03d}.stl"
        path.write_bytes(os.urandom(SIZE - 16) + seed.to_bytes(16, "big"))
        files.append(path)
    return files


def plain_git(files: list[Path], scratch: Path) -> float:
    work = scratch / "plain"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    for path in files:
        shutil.copy(path, work / path.name)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    start = time.perf_counter()
    subprocess.run(["git", "-C", str(work), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "100 parts"], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    setup()
    from django.core.files import File
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from designs import services
    from hub.models import User

    user = User.objects.create_user("bench", password="bench-password")
    client = Client()
    client.force_login(user)
    git_times, hub_times, api_times = [], [], []
    for run in range(RUNS):
        scratch = Path(tempfile.mkdtemp(prefix="fabhub-bench-commit-"))
        files = make_files(scratch / "files", run)
        git_times.append(plain_git(files, scratch))

        design = services.design_create(owner=user, slug=f"service-{run}", title="x", licence="MIT")
        handles = [path.open("rb") for path in files]
        uploads = [
            services.Upload(path=f"parts/{p.name}", content=File(h, name=p.name))
            for p, h in zip(files, handles, strict=True)
        ]
        for upload, path in zip(uploads, files, strict=True):
            upload.content.temporary_file_path = lambda p=path: str(p)  # as TemporaryUploadedFile
        start = time.perf_counter()
        services.design_commit(design=design, author=user, message="100 parts", uploads=uploads)
        hub_times.append(time.perf_counter() - start)
        for handle in handles:
            handle.close()

        services.design_create(owner=user, slug=f"api-{run}", title="x", licence="MIT")
        payload = {
            "files": [SimpleUploadedFile(p.name, p.read_bytes()) for p in files],
            "message": "100 parts",
        }
        start = time.perf_counter()
        response = client.post(f"/api/designs/bench/api-{run}/upload/", payload)
        api_times.append(time.perf_counter() - start)
        assert response.status_code == 201, response.content[:300]
        shutil.rmtree(scratch)

    git_best, hub_best, api_best = min(git_times), min(hub_times), min(api_times)
    print(f"{'100 files x 1 MB in one commit':<44}{'time':>9}{'vs git':>8}")
    print(f"{'plain git add + commit (baseline)':<44}{git_best:>8.2f}s{1:>7.2f}x")
    print(f"{'hub service (blobs + tree + commit + ref)':<44}{hub_best:>8.2f}s{hub_best / git_best:>7.2f}x")
    print(f"{'hub API upload (multipart parse included)':<44}{api_best:>8.2f}s{api_best / git_best:>7.2f}x")


if __name__ == "__main__":
    main()
