"""History of a design with 10,000 commits: hub API vs `git log` on the same repository.

Prints the time of each and the ratio hub / git (lower is better; 1.0 = as fast as git).
"""

from __future__ import annotations

import subprocess
import time

from _django import best_of, setup

COMMITS = 10_000
RARE_PATH = "docs/assembly.md"  # touched by one commit in 100
FIRST_TRIES, PATH_TRIES = 15, 10  # timings of each first-page row, path-filtered row


def fast_import_history(repo_path: str) -> None:
    """Write COMMITS commits with git fast-import: each edits one of 200 part files."""
    lines = []
    for n in range(COMMITS):
        path = RARE_PATH if n % 100 == 0 else f"parts/part-{n % 200:03d}.scad"
        data = f"// revision {n}\ncube([{n % 50 + 1}, 10, 10]);\n".encode()
        message = f"Revise {path} (#{n})".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(f"committer Bench <bench@example.org> {1_700_000_000 + n * 60} +0000\n".encode())
        lines.append(b"data %d\n%s\n" % (len(message), message))
        lines.append(f"M 100644 inline {path}\n".encode())
        lines.append(b"data %d\n%s\n" % (len(data), data))
    subprocess.run(["git", "-C", repo_path, "fast-import", "--quiet"], input=b"".join(lines), check=True)


def main() -> None:
    setup()
    from django.core.cache import cache
    from django.core.files.base import ContentFile
    from django.test import Client

    from designs import services
    from hub.models import User
    from hub.queue import wait_for_embedded_worker

    user = User.objects.create_user("bench", password="bench-password")
    design = services.design_create(owner=user, slug="history", title="History", licence="MIT")
    started = time.perf_counter()
    fast_import_history(str(design.repo_path))
    # What the hub does after any write or push (designs.services.refs_changed).
    design.repo.refresh_commit_graph()
    print(f"history: built {COMMITS:,} commits in {time.perf_counter() - started:.1f} s")

    client = Client()
    api = "/api/designs/bench/history/commits/"
    shown: list[int | None] = []  # the count each hub page showed, the latest last

    def hub_first_page():
        response = client.get(api, {"per_page": 30})
        assert response.status_code == 200 and len(response.json()["results"]) == 30
        shown.append(response.json()["count"])

    def hub_path_page():
        response = client.get(api, {"per_page": 30, "path": RARE_PATH})
        assert response.status_code == 200 and len(response.json()["results"]) == 30
        shown.append(response.json()["count"])

    git = ["git", "-C", str(design.repo_path), "log", "-n30", "--name-status", "main", "--"]

    def git_first_page():
        subprocess.run(git, check=True, capture_output=True)

    def git_path_page():
        subprocess.run([*git, RARE_PATH], check=True, capture_output=True)

    def add_commits(n: int) -> None:
        """`n` more commits on main, as a push brings them, then what the hub does after
        any write (the commit-graph); the first page after them is a new head's."""
        head = (
            subprocess.run(
                ["git", "-C", str(design.repo_path), "rev-parse", "main"], check=True, capture_output=True
            )
            .stdout.decode()
            .strip()
        )
        lines = [f"reset refs/heads/main\nfrom {head}".encode()]
        for i in range(n):
            path = RARE_PATH if i == 0 else f"parts/part-{i:03d}.scad"
            data, message = f"// pushed {i}\n".encode(), b"Pushed"
            lines.append(b"commit refs/heads/main\ncommitter Bench <bench@example.org> 1800000000 +0000")
            lines.append(
                b"data %d\n%s\nM 100644 inline %s\ndata %d\n%s"
                % (len(message), message, path.encode(), len(data), data)
            )
        stream = b"\n".join(lines) + b"\n"
        subprocess.run(
            ["git", "-C", str(design.repo_path), "fast-import", "--quiet"], input=stream, check=True
        )
        design.repo.refresh_commit_graph()

    def first_requests(page, before, tries: int) -> float:
        """The best of `tries` first requests for a head, each after `before()` and after
        the embedded worker finished what the ones before queued (neither is timed)."""
        timings = []
        for _ in range(tries):
            # The count the try before queued is written before `before()` runs: written
            # after a cache.clear(), it would make the next "never counted" try a warm one.
            wait_for_embedded_worker()
            before()
            wait_for_embedded_worker()
            timings.append(best_of(1, page))
        wait_for_embedded_worker()
        return min(timings)

    # Warm the process (URLs, imports, the view) on another design's history, not the count.
    other = services.design_create(owner=user, slug="warm-up", title="Warm-up", licence="MIT")
    readme = services.Upload("README.md", ContentFile(b"# Warm-up\n", name="README.md"))
    services.design_commit(design=other, author=user, message="One", uploads=[readme])
    client.get("/api/designs/bench/warm-up/commits/")
    # The tasks the two designs' creation queued (search index, README) run in this
    # process's embedded worker: let them finish rather than share the CPU with the timings.
    wait_for_embedded_worker()
    # A history's length is cached by head sha: the first request for a head finds it.
    # Never counted (an empty cache), the page does not wait for 10,000 commits to be
    # counted: a worker counts them. After new commits on a counted head, the first page
    # shows them all and counts them there; the path-filtered page leaves its count to
    # the worker, which counts only the new commits. The `count` column says what the
    # page showed (null: "Counting the commits…"); a shown count is always exact.
    # Each row is the best of as many tries as the git timing it is divided by (15 for
    # the first page, 10 for the path's): the best of fewer tries of the same request
    # is slower on a busy machine, whichever side it is.
    never_first = first_requests(hub_first_page, cache.clear, FIRST_TRIES)
    never_first_count = shown[-1]
    never_path = first_requests(hub_path_page, cache.clear, PATH_TRIES)
    never_path_count = shown[-1]
    never_counts = shown[-FIRST_TRIES - PATH_TRIES :]
    assert never_counts == [None] * len(never_counts), f"a never-counted try found a count: {never_counts}"
    for page in (hub_first_page, hub_path_page):
        first_requests(page, lambda: None, 5)  # counted (by the worker), then warm
    warm_first = best_of(FIRST_TRIES, hub_first_page)
    warm_first_count = shown[-1]
    warm_path = best_of(PATH_TRIES, hub_path_page)
    warm_path_count = shown[-1]
    cold_first = first_requests(hub_first_page, lambda: add_commits(3), FIRST_TRIES)
    cold_first_count = shown[-1]
    cold_path = first_requests(hub_path_page, lambda: add_commits(3), PATH_TRIES)
    cold_path_count = shown[-1]
    # git's own first read after new commits is slower than its next ones (a new pack, a
    # new commit-graph layer): the cold rows compare with `git log` timed the same way.
    git_cold_first = first_requests(git_first_page, lambda: add_commits(3), FIRST_TRIES)
    git_cold_path = first_requests(git_path_page, lambda: add_commits(3), PATH_TRIES)
    git_first, git_path = best_of(FIRST_TRIES, git_first_page), best_of(PATH_TRIES, git_path_page)
    rows = [
        ("first page, never counted (count queued)", never_first, git_first, never_first_count),
        ("first page, cold (after 3 new commits)", cold_first, git_cold_first, cold_first_count),
        ("first page (30 commits)", warm_first, git_first, warm_first_count),
        ("path-filtered page, never counted", never_path, git_path, never_path_count),
        ("path-filtered page, cold (3 new commits)", cold_path, git_cold_path, cold_path_count),
        (f"path-filtered page ({RARE_PATH})", warm_path, git_path, warm_path_count),
    ]
    print(f"{'history of 10,000 commits':<42}{'hub API':>10}{'git log':>10}{'ratio':>8}{'count':>8}")
    for label, hub, git_time, total in rows:
        print(
            f"{label:<42}{hub * 1000:>8.1f}ms{git_time * 1000:>8.1f}ms{hub / git_time:>7.2f}x"
            f"{'null' if total is None else total:>8}"
        )
    print(
        f"  cold rows against git log warm instead: {cold_first / git_first:.2f}x, "
        f"path-filtered {cold_path / git_path:.2f}x"
    )
    # Context, not a baseline: what a page that waited for the whole count would add to
    # `git log -n30`, which never walks the whole history (the worker pays it now).
    count = ["git", "-C", str(design.repo_path), "rev-list", "--count", "main", "--"]
    for label, args in (("whole history", count), ("path-filtered", [*count, RARE_PATH])):
        took = best_of(5, lambda args=args: subprocess.run(args, check=True, capture_output=True))
        print(f"  git rev-list --count ({label}): {took * 1000:.1f} ms")


if __name__ == "__main__":
    main()
