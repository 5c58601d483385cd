"""Diff pages answer at once: comparisons run in the background, cached by blob pair.

Without `background_tasks_run` the test's transaction never commits, so what a page
queues stays queued: that is a page seen before any worker got to it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from designs import services
from designs.models import BlobDiff, Design
from designs.services import diff_pages
from tests.factories import DesignFactory, commit_files

CORPUS = Path("/work/shared/corpus/meshes/prusa-i3")


def note(n: int, changed: bool = False) -> str:
    return "".join(f"line {k} of note {n}{' (changed)' if changed and k == 5 else ''}\n" for k in range(20))


@pytest.fixture
def notes(alice):
    design = DesignFactory(owner=alice, slug="notes")
    first = commit_files(design, {f"n{n}.txt": note(n) for n in range(3)})
    second = commit_files(design, {f"n{n}.txt": note(n, changed=True) for n in range(3)}, message="Change")
    return design, first, second


def state_url(design: Design, base: str, head: str) -> str:
    return (
        reverse("design-diff-state", args=[design.owner.username, design.slug]) + f"?base={base}&head={head}"
    )


def test_a_commit_page_answers_with_its_diffs_pending_and_queues_them(client, notes):
    design, first, second = notes

    page = client.get(reverse("design-commit", args=["alice", "notes", second]))

    content = page.content.decode()
    assert page.status_code == 200
    assert content.count("data-pending") == 3 and "Comparing…" in content
    assert "0 of 3 files compared" in content
    assert 'data-diff-state="' in content and "hub/diffs.js" in content
    assert BlobDiff.objects.filter(status="pending", differ="text").count() == 3


def test_each_pair_is_compared_once_and_shared_by_every_page_and_design(
    client, alice, notes, background_tasks_run
):
    design, first, second = notes
    fork = DesignFactory(owner=alice, slug="copy")
    commit_files(fork, {f"n{n}.txt": note(n) for n in range(3)})
    fork_head = commit_files(fork, {f"n{n}.txt": note(n, changed=True) for n in range(3)}, message="Change")

    pages = [
        reverse("design-commit", args=["alice", "notes", second]),
        reverse("design-compare", args=["alice", "notes"]) + f"?base={first}&head={second}",
        reverse("design-commit", args=["alice", "copy", fork_head]),
    ]
    for url in pages + pages:
        content = client.get(url).content.decode()
        assert "data-pending" not in content
        assert '<span class="add">+line 5 of note 2 (changed)</span>' in content

    assert BlobDiff.objects.count() == 3
    assert set(BlobDiff.objects.values_list("status", "attempts")) == {("done", 1)}


def test_the_state_endpoint_counts_progress_and_sends_the_finished_files(client, notes):
    design, first, second = notes
    client.get(reverse("design-commit", args=["alice", "notes", second]))
    url = state_url(design, first, second) + "&pending=1,2,3"

    before = client.get(url, HTTP_ACCEPT="application/json").json()
    (one, *others) = BlobDiff.objects.order_by("pk")
    diff_pages.blob_diffs_run(diff_ids=[one.pk])
    during = client.get(url, HTTP_ACCEPT="application/json").json()
    diff_pages.blob_diffs_run(diff_ids=[row.pk for row in others])
    after = client.get(url, HTTP_ACCEPT="application/json").json()

    assert (before["pending"], before["total"], before["files"]) == (3, 3, {})
    assert before["progress"] == "0 of 3 files compared"
    assert during["pending"] == 2 and during["progress"] == "1 of 3 files compared"
    assert len(during["files"]) == 1
    assert after["pending"] == 0 and set(after["files"]) == {"file-1", "file-2", "file-3"}
    assert all("data-pending" not in html and 'class="add"' in html for html in after["files"].values())


def test_the_state_endpoint_sends_only_the_files_the_page_still_waits_for(
    client, notes, background_tasks_run
):
    design, first, second = notes
    answer = client.get(
        state_url(design, first, second) + "&pending=2", HTTP_ACCEPT="application/json"
    ).json()
    assert list(answer["files"]) == ["file-2"]


def test_a_stranger_gets_404_for_a_private_design_s_diff_state(client, alice, bob, notes):
    design, first, second = notes
    services.design_update(design=design, visibility=Design.Visibility.PRIVATE)
    url = state_url(design, first, second)

    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 404
    assert client.post(url, {"retry": "1"}).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 200


def test_the_state_endpoint_refuses_a_commit_the_design_does_not_hold(client, notes):
    design, first, _ = notes
    assert client.get(state_url(design, first, "0" * 40)).status_code == 404


def mesh_design(
    alice, files_before: dict[str, bytes], files_after: dict[str, bytes]
) -> tuple[Design, str, str]:
    design = DesignFactory(owner=alice, slug="parts")
    return design, commit_files(design, files_before), commit_files(design, files_after, message="Change")


def test_a_hostile_mesh_fails_alone_with_its_reason_in_its_place(client, alice, background_tasks_run):
    lever = (CORPUS / "fs-lever.stl").read_bytes()
    knob = (CORPUS / "LCD-knob.stl").read_bytes()
    # A binary STL header promising a billion triangles in a few bytes.
    hostile = b"\0" * 80 + (10**9).to_bytes(4, "little") + b"\0" * 50
    design, first, second = mesh_design(
        alice, {"good.stl": lever, "bad.stl": knob}, {"good.stl": knob, "bad.stl": hostile}
    )

    client.force_login(alice)  # Retry is offered to a signed-in person
    page = client.get(reverse("design-commit", args=["alice", "parts", second]))

    files = {row["file"].path: row for row in page.context["files"]}
    assert files["good.stl"]["mesh"]["geometry_rows"]
    bad = files["bad.stl"]["mesh"]
    assert bad["geometry_failed"] and bad["geometry_reason"]
    content = page.content.decode()
    assert f"No geometric comparison: {bad['geometry_reason']}" in content
    assert 'name="retry"' in content
    assert page.context["diff"].pending == 0


def test_a_comparison_whose_worker_died_is_queued_again(client, notes, background_tasks_run):
    design, first, second = notes
    client.get(reverse("design-commit", args=["alice", "notes", second]))
    row = BlobDiff.objects.first()
    long_ago = timezone.now() - timedelta(hours=1)
    BlobDiff.objects.filter(pk=row.pk).update(status="running", started_at=long_ago, attempts=1, detail=None)

    answer = client.get(state_url(design, first, second), HTTP_ACCEPT="application/json").json()

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("done", 2) and row.detail["patch"]
    assert answer["pending"] == 0


def test_a_comparison_interrupted_three_times_is_shown_failed_with_a_retry(client, alice, notes):
    design, first, second = notes
    client.get(reverse("design-commit", args=["alice", "notes", second]))
    row = BlobDiff.objects.first()
    long_ago = timezone.now() - timedelta(hours=1)
    BlobDiff.objects.filter(pk=row.pk).update(
        status="running", started_at=long_ago, attempts=diff_pages.MAX_ATTEMPTS
    )

    client.force_login(alice)
    page = client.get(reverse("design-commit", args=["alice", "notes", second])).content.decode()

    row.refresh_from_db()
    assert row.status == "failed" and "interrupted 3 times" in row.reason
    assert "interrupted 3 times" in page and f'name="retry" value="{row.pk}"' in page
    # A visitor who is not signed in could not retry: no button is offered.
    client.logout()
    page = client.get(reverse("design-commit", args=["alice", "notes", second])).content.decode()
    assert "interrupted 3 times" in page and 'name="retry"' not in page


def test_a_pending_comparison_whose_message_was_lost_is_queued_again(client, notes, background_tasks_run):
    design, first, second = notes
    commit_page = reverse("design-commit", args=["alice", "notes", second])
    BlobDiff.objects.bulk_create(
        BlobDiff(old_sha=c.old_sha, new_sha=c.new_sha, differ="text", design=design, new_path=c.path)
        for c in design.repo.diff(first, second)
    )
    BlobDiff.objects.update(queued_at=timezone.now() - diff_pages.STALE_PENDING - timedelta(seconds=1))

    content = client.get(commit_page).content.decode()

    assert "data-pending" not in content
    assert set(BlobDiff.objects.values_list("status", flat=True)) == {"done"}


def test_a_recent_pending_comparison_is_left_to_its_worker(client, notes, background_tasks_run):
    design, first, second = notes
    BlobDiff.objects.bulk_create(
        BlobDiff(old_sha=c.old_sha, new_sha=c.new_sha, differ="text", design=design, new_path=c.path)
        for c in design.repo.diff(first, second)
    )

    content = client.get(reverse("design-commit", args=["alice", "notes", second])).content.decode()

    assert content.count("data-pending") == 3
    assert set(BlobDiff.objects.values_list("status", flat=True)) == {"pending"}


def test_retry_queues_a_failed_comparison_of_this_diff_again(client, alice, notes, background_tasks_run):
    design, first, second = notes
    client.get(reverse("design-commit", args=["alice", "notes", second]))
    long_ago = timezone.now() - timedelta(hours=1)
    BlobDiff.objects.update(status="failed", reason="the worker stopped", detail=None, finished_at=long_ago)
    row = BlobDiff.objects.first()
    elsewhere = BlobDiff.objects.create(
        old_sha="a" * 40, new_sha="b" * 40, differ="text", new_path="x", status="failed"
    )
    client.force_login(alice)

    answer = client.post(
        state_url(design, first, second),
        {"retry": [str(row.pk), str(elsewhere.pk)]},
        HTTP_ACCEPT="application/json",
    )

    assert answer.json() == {"retried": 1}
    row.refresh_from_db()
    elsewhere.refresh_from_db()
    assert row.status == "done" and row.detail["patch"]
    assert elsewhere.status == "failed"  # not a file of this diff: left alone


def failed_row(design: Design, second: str, client, **fields) -> BlobDiff:
    client.get(reverse("design-commit", args=["alice", "notes", second]))
    row = BlobDiff.objects.first()
    BlobDiff.objects.filter(pk=row.pk).update(status="failed", reason="it failed", detail=None, **fields)
    return row


def retry(client, design: Design, first: str, second: str, row: BlobDiff):
    return client.post(
        state_url(design, first, second), {"retry": str(row.pk)}, HTTP_ACCEPT="application/json"
    )


def test_a_visitor_who_is_not_signed_in_cannot_retry_a_comparison(client, notes):
    design, first, second = notes
    row = failed_row(design, second, client, attempts=1, finished_at=timezone.now() - timedelta(hours=1))

    assert retry(client, design, first, second, row).status_code == 403

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 1)


def test_a_comparison_that_just_failed_is_retried_only_after_a_pause(client, alice, notes):
    design, first, second = notes
    row = failed_row(design, second, client, attempts=1, finished_at=timezone.now())
    client.force_login(alice)

    assert retry(client, design, first, second, row).json() == {"retried": 0}
    BlobDiff.objects.filter(pk=row.pk).update(finished_at=timezone.now() - diff_pages.RETRY_PAUSE)
    assert retry(client, design, first, second, row).json() == {"retried": 1}

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)


def test_retries_of_a_comparison_whose_worker_keeps_dying_are_capped(client, alice, notes):
    """Each retry is one more attempt (the count is not reset): a comparison that kills
    its worker every time fails after one more death, and stops being retried at all
    after MAX_TOTAL_ATTEMPTS."""
    design, first, second = notes
    long_ago = timezone.now() - timedelta(hours=1)
    row = failed_row(design, second, client, attempts=diff_pages.MAX_ATTEMPTS, finished_at=long_ago)
    client.force_login(alice)

    retried = 0
    for _ in range(diff_pages.MAX_TOTAL_ATTEMPTS):
        retried += retry(client, design, first, second, row).json()["retried"]
        # A worker claims the row and dies on it; the next look at the page sees that.
        BlobDiff.objects.filter(pk=row.pk, status="pending").update(
            status="running", started_at=long_ago, attempts=F("attempts") + 1
        )
        client.get(state_url(design, first, second), HTTP_ACCEPT="application/json")
        row.refresh_from_db()
        assert row.status == "failed"
        BlobDiff.objects.filter(pk=row.pk).update(finished_at=long_ago)  # the pause is over

    assert retried == diff_pages.MAX_TOTAL_ATTEMPTS - diff_pages.MAX_ATTEMPTS
    assert row.attempts == diff_pages.MAX_TOTAL_ATTEMPTS
    assert f"interrupted {diff_pages.MAX_TOTAL_ATTEMPTS} times" in row.reason
    # Past the cap the page no longer offers a Retry that would do nothing.
    page = client.get(reverse("design-commit", args=["alice", "notes", second])).content.decode()
    assert f"interrupted {diff_pages.MAX_TOTAL_ATTEMPTS} times" in page and 'name="retry"' not in page


def test_the_proposal_page_fills_in_from_the_same_cache(client, alice, bob, background_tasks_run):
    design = DesignFactory(owner=alice, slug="notes")
    commit_files(design, {"n.txt": note(1)})
    fork = services.design_fork(design=design, user=bob, slug="notes")
    commit_files(fork, {"n.txt": note(1, changed=True)}, author=bob)
    proposal = services.proposals.proposal_create(
        target=design,
        user=bob,
        source=fork,
        source_branch="main",
        target_branch="main",
        title="Change a line",
        description="",
    )

    page = client.get(reverse("design-proposal", args=["alice", "notes", proposal.number]))

    assert '<span class="add">+line 5 of note 1 (changed)</span>' in page.content.decode()
    assert BlobDiff.objects.filter(status="done").count() == 1
