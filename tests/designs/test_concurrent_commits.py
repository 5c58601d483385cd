"""Two writers at once never lose a change nor corrupt the repository."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from hub.exceptions import Conflict
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_threads(jobs: list, workers: int) -> list:
    start = threading.Barrier(workers)

    def run(job):
        start.wait()  # release every writer at the same moment
        try:
            return job()
        except Exception as exc:  # noqa: BLE001 — the test inspects what each writer got
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, jobs))


def test_concurrent_commits_of_different_files_all_land(alice):
    design = DesignFactory(owner=alice)
    base = commit_files(design, {"README.md": "# Car"})
    writers = 8
    jobs = [
        (
            lambda i=i: [
                commit_files(design, {f"module-{i}/part-{n}.txt": f"{i}-{n}"}, f"w{i} c{n}") for n in range(3)
            ]
        )
        for i in range(writers)
    ]
    results = run_in_threads(jobs, writers)

    assert not [r for r in results if isinstance(r, Exception)]
    repo = design.repo
    head = repo.branch_head("main")
    assert repo.count_commits(head) == 1 + writers * 3
    assert len(repo.all_paths(head)) == 1 + writers * 3
    assert repo.is_ancestor(base, head)
    ok, report = repo.fsck()
    assert ok, report


def test_concurrent_commits_to_the_same_file_never_silently_overwrite(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"bom.csv": "part,qty\nbolt,1\n"})
    writers = 6
    jobs = [
        (lambda i=i: commit_files(design, {"bom.csv": f"part,qty\nbolt,{i + 2}\n"}, f"w{i}"))
        for i in range(writers)
    ]
    results = run_in_threads(jobs, writers)

    landed = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert landed, "at least one writer must win"
    assert all(isinstance(r, Conflict) for r in refused), refused
    repo = design.repo
    # Every commit that reported success is in the history: nothing was lost.
    head = repo.branch_head("main")
    assert all(repo.is_ancestor(sha, head) for sha in landed)
    assert repo.count_commits(head) == 1 + len(landed)
    assert repo.fsck()[0]


def test_writers_pinned_to_the_same_parent_exactly_one_wins(alice):
    design = DesignFactory(owner=alice)
    parent = commit_files(design, {"a.txt": "0"})
    writers = 6
    jobs = [
        (lambda i=i: commit_files(design, {f"file-{i}.txt": str(i)}, f"w{i}", expected_head=parent))
        for i in range(writers)
    ]
    results = run_in_threads(jobs, writers)

    landed = [r for r in results if isinstance(r, str)]
    assert len(landed) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, str))
    assert design.repo.branch_head("main") == landed[0]
