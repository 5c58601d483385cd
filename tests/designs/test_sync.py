"""Keeping a fork up to date: ahead/behind counts, "Sync with upstream" fast-forwards a
fork without commits of its own, and otherwise merges only when asked and only cleanly."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs import selectors, services
from designs.services import proposals
from hub.exceptions import Conflict, PermissionDenied, ValidationError
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(alice):
    design = DesignFactory(owner=alice, slug="rover")
    commit_files(design, {"README.md": "# Rover\n", "wheel.txt": "a\nb\nc\nd\ne\n"}, "Start")
    return design


@pytest.fixture
def fork(upstream, bob):
    return services.design_fork(design=upstream, user=bob)


def test_a_fresh_fork_is_neither_ahead_nor_behind(upstream, fork, bob):
    status = selectors.design_upstream_status(fork, bob)
    assert (status.ahead, status.behind) == (0, 0) and status.upstream == upstream


def test_counts_follow_both_sides(upstream, fork, bob):
    commit_files(upstream, {"u1.txt": "1"}, "U1")
    commit_files(upstream, {"u2.txt": "2"}, "U2")
    commit_files(fork, {"f1.txt": "1"}, "F1", author=bob)
    status = selectors.design_upstream_status(fork, bob)
    assert (status.ahead, status.behind) == (1, 2) and not status.can_fast_forward


def test_a_fork_without_commits_of_its_own_is_fast_forwarded(upstream, fork, bob):
    head = commit_files(upstream, {"u1.txt": "1"}, "U1")
    result = proposals.design_sync_upstream(design=fork, user=bob)
    assert result.outcome == "fast-forward" and result.head == head
    assert fork.repo.branch_head("main") == head and fork.repo.fsck()[0]
    status = selectors.design_upstream_status(fork, bob)
    assert (status.ahead, status.behind) == (0, 0)


def test_a_fork_with_commits_of_its_own_is_not_merged_unless_asked(upstream, fork, bob):
    commit_files(upstream, {"u1.txt": "1"}, "U1")
    mine = commit_files(fork, {"f1.txt": "1"}, "F1", author=bob)
    with pytest.raises(Conflict) as refused:
        proposals.design_sync_upstream(design=fork, user=bob)
    assert refused.value.extra == {"ahead": 1, "behind": 1}
    assert fork.repo.branch_head("main") == mine


def test_merging_the_upstream_into_a_fork_makes_a_merge_commit(upstream, fork, bob):
    theirs = commit_files(upstream, {"wheel.txt": "A\nb\nc\nd\ne\n"}, "U1")
    mine = commit_files(fork, {"wheel.txt": "a\nb\nc\nd\nE\n"}, "F1", author=bob)
    result = proposals.design_sync_upstream(design=fork, user=bob, merge=True)
    assert result.outcome == "merged"
    commit = fork.repo.commit(result.head)
    assert commit.parents == [mine, theirs]
    assert fork.repo.read_blob(fork.repo.entry(result.head, "wheel.txt").sha) == b"A\nb\nc\nd\nE\n"
    assert selectors.design_upstream_status(fork, bob).behind == 0


def test_a_conflicting_sync_lists_the_files_and_changes_nothing(upstream, fork, bob):
    commit_files(upstream, {"wheel.txt": "upstream\n"}, "U1")
    mine = commit_files(fork, {"wheel.txt": "fork\n"}, "F1", author=bob)
    with pytest.raises(Conflict) as refused:
        proposals.design_sync_upstream(design=fork, user=bob, merge=True)
    assert [c["path"] for c in refused.value.extra["conflicts"]] == ["wheel.txt"]
    assert fork.repo.branch_head("main") == mine


def test_an_up_to_date_fork_has_nothing_to_do(upstream, fork, bob):
    assert proposals.design_sync_upstream(design=fork, user=bob).outcome == "up-to-date"


def test_the_upstream_s_lfs_objects_come_along(upstream, fork, alice, bob, settings):
    from designs.selectors import lfs_objects_served

    settings.FABHUB_LFS_THRESHOLD_BYTES = 10
    commit_files(upstream, {"hull.bin": b"a large hull " * 10}, "Hull")
    [oid] = upstream.lfs_links.values_list("lfs_object__oid", flat=True)
    assert oid not in lfs_objects_served(fork, [oid])
    proposals.design_sync_upstream(design=fork, user=bob)
    assert oid in lfs_objects_served(fork, [oid])


def test_only_writers_of_the_fork_may_sync(upstream, fork, alice):
    commit_files(upstream, {"u1.txt": "1"}, "U1")
    with pytest.raises(PermissionDenied):
        proposals.design_sync_upstream(design=fork, user=alice)


def test_a_design_that_is_not_a_fork_cannot_sync(upstream, alice):
    with pytest.raises(ValidationError):
        proposals.design_sync_upstream(design=upstream, user=alice)


def test_an_upstream_that_turned_private_is_not_compared(upstream, fork, bob):
    services.design_update(design=upstream, visibility="private")
    assert selectors.design_upstream_status(fork, bob) is None


def test_the_api_reports_ahead_and_behind_and_syncs(upstream, fork, bob, bob_api):
    head = commit_files(upstream, {"u1.txt": "1"}, "U1")
    status = bob_api.get(reverse("api-design-upstream", args=["bob", "rover"])).json()
    assert status["ahead"] == 0 and status["behind"] == 1 and status["can_fast_forward"]
    assert status["upstream"] == "alice/rover" and status["upstream_head"] == head
    synced = bob_api.post(reverse("api-design-sync", args=["bob", "rover"]), {}, format="json")
    assert synced.status_code == 200 and synced.json() == {
        "outcome": "fast-forward",
        "head": head,
        "ahead": 0,
        "behind": 0,
    }


def test_the_api_answers_409_for_a_diverged_fork_without_merge(upstream, fork, bob, bob_api):
    commit_files(upstream, {"u1.txt": "1"}, "U1")
    commit_files(fork, {"f1.txt": "1"}, "F1", author=bob)
    answer = bob_api.post(reverse("api-design-sync", args=["bob", "rover"]), {}, format="json")
    assert answer.status_code == 409 and answer.json()["ahead"] == 1
    merged = bob_api.post(reverse("api-design-sync", args=["bob", "rover"]), {"merge": True}, format="json")
    assert merged.status_code == 200 and merged.json()["outcome"] == "merged"


def test_the_design_page_shows_the_counts_and_the_sync_button(client, upstream, fork, bob):
    commit_files(upstream, {"u1.txt": "1"}, "U1")
    client.force_login(bob)
    page = client.get(reverse("design-detail", args=["bob", "rover"])).content.decode()
    assert "Sync with upstream" in page and "<strong>1</strong> behind" in page
    response = client.post(reverse("design-sync", args=["bob", "rover"]), {"action": "sync"})
    assert response.status_code == 302
    assert fork.repo.branch_head("main") == upstream.repo.branch_head("main")


def test_the_sync_page_offers_a_merge_or_a_proposal_when_both_moved(client, upstream, fork, bob):
    commit_files(upstream, {"u1.txt": "1"}, "U1")
    commit_files(fork, {"f1.txt": "1"}, "F1", author=bob)
    client.force_login(bob)
    page = client.get(reverse("design-sync", args=["bob", "rover"])).content.decode()
    assert "Merge the upstream into main" in page and "Propose your changes upstream" in page
    client.post(reverse("design-sync", args=["bob", "rover"]), {"action": "merge"})
    assert selectors.design_upstream_status(fork, bob).behind == 0
