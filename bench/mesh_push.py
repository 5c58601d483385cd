"""1,000 small meshes in one push: analyses per second; then the same files pushed again
(under other names, in another commit): all cached by blob sha, so near-zero work.

The push is written with git fast-import and announced through services.design_pushed,
exactly what the smart-HTTP receive path calls once git has accepted a push.
"""

from __future__ import annotations

import subprocess
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


def main() -> None:
    setup()
    from django.test.utils import override_settings

    from designs import services
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
        started = time.perf_counter()
        services.design_pushed(design=design, refs_before=before)
        first = time.perf_counter() - started
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


if __name__ == "__main__":
    main()
