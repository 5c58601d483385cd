"""History of a design with 10,000 commits: hub API vs `git log` on the same repository.

Prints the time of each and the ratio hub / git (lower is better; 1.0 = as fast as git).
"""

from __future__ import annotations

import subprocess
import time

from _django import best_of, setup

COMMITS = 10_000
RARE_PATH = "docs/assembly.md"  # touched by one commit in 100


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
    from django.test import Client

    from designs import services
    from hub.models import User

    user = User.objects.create_user("bench", password="bench-password")
    design = services.design_create(owner=user, slug="history", title="History", licence="MIT")
    started = time.perf_counter()
    fast_import_history(str(design.repo_path))
    # What the hub does after any write or push (designs.services.refs_changed).
    design.repo.refresh_commit_graph()
    print(f"history: built {COMMITS:,} commits in {time.perf_counter() - started:.1f} s")

    client = Client()
    api = "/api/designs/bench/history/commits/"

    def hub_first_page():
        response = client.get(api, {"per_page": 30})
        assert response.status_code == 200 and len(response.json()["results"]) == 30

    def hub_path_page():
        response = client.get(api, {"per_page": 30, "path": RARE_PATH})
        assert response.status_code == 200 and len(response.json()["results"]) == 30

    git = ["git", "-C", str(design.repo_path), "log", "-n30", "--name-status", "main", "--"]

    def git_first_page():
        subprocess.run(git, check=True, capture_output=True)

    def git_path_page():
        subprocess.run([*git, RARE_PATH], check=True, capture_output=True)

    client.get("/api/designs/bench/history/")  # warm the process (URLs, imports), not the count
    # The first request of a head computes the history's length; later ones read it
    # from the cache (keyed by sha, so never stale). Both are shown.
    rows = [
        ("first page, cold (count computed)", best_of(1, hub_first_page), best_of(15, git_first_page)),
        ("first page (30 commits)", best_of(15, hub_first_page), best_of(15, git_first_page)),
        ("path-filtered page, cold", best_of(1, hub_path_page), best_of(10, git_path_page)),
        (f"path-filtered page ({RARE_PATH})", best_of(10, hub_path_page), best_of(10, git_path_page)),
    ]
    print(f"{'history of 10,000 commits':<42}{'hub API':>10}{'git log':>10}{'ratio':>8}")
    for label, hub, git_time in rows:
        print(f"{label:<42}{hub * 1000:>8.1f}ms{git_time * 1000:>8.1f}ms{hub / git_time:>7.2f}x")
    # Context for the cold rows, not their baseline: a cold page must also count the whole
    # history, which `git log -n30` never walks. The hub runs the count beside the log.
    count = ["git", "-C", str(design.repo_path), "rev-list", "--count", "main", "--"]
    for label, args in (("whole history", count), ("path-filtered", [*count, RARE_PATH])):
        took = best_of(5, lambda args=args: subprocess.run(args, check=True, capture_output=True))
        print(f"  git rev-list --count ({label}): {took * 1000:.1f} ms")


if __name__ == "__main__":
    main()
