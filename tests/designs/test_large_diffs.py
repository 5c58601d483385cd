"""Diff pages stay small whatever a commit holds: at most PAGE_BUDGET files and bytes are
compared on one page; the rest are listed with a link that shows each one alone."""

from __future__ import annotations

import tracemalloc

import pytest
from django.urls import reverse

from designs.diffs import PAGE_BUDGET
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="big")
    commit_files(design, {"README.md": "# Big\n"})
    return design


def test_a_commit_with_more_files_than_a_page_shows_defers_the_rest(client, design, background_tasks_run):
    count = PAGE_BUDGET.files + 20
    sha = commit_files(design, {f"notes/{n:03}.txt": f"note {n}\n" for n in range(count)})
    page = client.get(reverse("design-commit", args=["alice", "big", sha])).content.decode()
    assert page.count('class="patch"') == PAGE_BUDGET.files
    assert page.count("Show this file's diff") == 20
    assert f"{count} files changed" in page

    alone = client.get(reverse("design-commit", args=["alice", "big", sha]), {"file": "notes/119.txt"})
    text = alone.content.decode()
    assert text.count('class="patch"') == 1 and "note 119" in text


def test_a_commit_of_fifty_one_megabyte_files_renders_a_small_page_in_bounded_memory(client, design):
    line = "0123456789abcdef" * 4 + "\n"  # 65 bytes
    big = line * (1_000_000 // len(line))
    sha = commit_files(design, {f"logs/{n:02}.txt": big.replace("0123", f"{n:04}") for n in range(50)})
    url = reverse("design-commit", args=["alice", "big", sha])
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        response = client.get(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    assert peak - before < 50 * 1024 * 1024, f"rendering took {(peak - before) / 1e6:.0f} MB"
    assert len(response.content) < 8 * 1024 * 1024, f"the page is {len(response.content) / 1e6:.0f} MB"
    assert response.content.decode().count("Show this file's diff") >= 45


def test_the_compare_and_proposal_pages_keep_the_same_budget(client, design, alice, bob):
    from designs import services
    from designs.services import proposals

    base = design.repo.branch_head("main")
    head = commit_files(design, {f"n/{n:03}.txt": f"{n}\n" for n in range(PAGE_BUDGET.files + 5)})
    compare = client.get(reverse("design-compare", args=["alice", "big"]), {"base": base, "head": head})
    assert compare.content.decode().count("Show this file's diff") == 5

    fork = services.design_fork(design=design, user=bob)
    commit_files(fork, {f"m/{n:03}.txt": f"{n}\n" for n in range(PAGE_BUDGET.files + 3)}, author=bob)
    proposal = proposals.proposal_create(
        target=design, user=bob, source=fork, source_branch="main", title="M"
    )
    page = client.get(reverse("design-proposal", args=["alice", "big", proposal.number]))
    assert page.content.decode().count("Show this file's diff") == 3
