"""Change proposals: a fork's branch merged into its upstream on the server, by
fast-forward or a merge commit built with `git merge-tree`, conflicts listed by file
before a merge is offered, and the target branch moved only by compare-and-swap."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs import selectors, services
from designs.git import Repository
from designs.services import proposals
from hub.exceptions import Conflict, PermissionDenied, ValidationError
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

STEP = "ISO-10303-21;\nHEADER;\nFILE_NAME('bracket');\nENDSEC;\nDATA;\n#1=POINT(0,0,0);\n#2=POINT(1,0,0);\n#3=POINT(2,0,0);\n#4=POINT(3,0,0);\n#5=POINT(4,0,0);\nENDSEC;\nEND-ISO-10303-21;\n"
TEXT = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n"


@pytest.fixture
def upstream(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# Bracket\n", "notes.txt": TEXT, "bracket.step": STEP}, "Start")
    return design


@pytest.fixture
def fork(upstream, bob):
    return services.design_fork(design=upstream, user=bob)


def propose(fork, upstream, user, branch="main", **kwargs):
    return proposals.proposal_create(
        target=upstream,
        user=user,
        source=fork,
        source_branch=branch,
        title=kwargs.pop("title", "Improve it"),
        **kwargs,
    )


def test_a_fork_s_branch_is_fast_forwarded_when_the_upstream_did_not_move(upstream, fork, alice, bob):
    head = commit_files(fork, {"notes.txt": TEXT + "line 8\n"}, "Add a line", author=bob)
    proposal = propose(fork, upstream, bob)
    assert proposal.merge_state == "fast-forward" and proposal.commit_count == 1
    assert upstream.repo.resolve_ref(proposal.head_ref) == head

    sha = proposals.proposal_merge(proposal=proposal, user=alice)

    assert sha == head == upstream.repo.branch_head("main")
    proposal.refresh_from_db()
    assert proposal.status == "merged" and proposal.merged_by == alice and proposal.merged_sha == head


def test_diverged_branches_get_a_merge_commit_built_without_a_working_copy(upstream, fork, alice, bob):
    fork_head = commit_files(fork, {"notes.txt": TEXT.replace("line 1", "LINE ONE")}, "Top", author=bob)
    upstream_head = commit_files(upstream, {"notes.txt": TEXT.replace("line 7", "LINE SEVEN")}, "Bottom")
    proposal = propose(fork, upstream, bob)
    assert proposal.merge_state == "clean" and proposal.conflicts == []

    sha = proposals.proposal_merge(proposal=proposal, user=alice)

    repo = upstream.repo
    commit = repo.commit(sha)
    assert commit.parents == [upstream_head, fork_head]
    assert commit.summary == "Merge proposal #1 from bob/bracket:main"
    assert commit.author.name == "Alice Maker"
    merged = repo.read_blob(repo.entry(sha, "notes.txt").sha).decode()
    assert "LINE ONE" in merged and "LINE SEVEN" in merged
    # A bare repository, merged from objects alone: no index, no work tree appeared.
    assert not (repo.path / "index").exists() and repo.fsck()[0]


def test_conflicts_are_listed_by_file_and_the_merge_is_refused(upstream, fork, alice, bob):
    commit_files(
        fork, {"notes.txt": TEXT.replace("line 4", "fork's 4"), "part.stl": b"\0fork"}, "Fork", author=bob
    )
    commit_files(upstream, {"notes.txt": TEXT.replace("line 4", "upstream's 4"), "part.stl": b"\0up"}, "Up")
    before = upstream.repo.branch_head("main")
    proposal = propose(fork, upstream, bob)

    assert proposal.merge_state == "conflict"
    by_path = {c["path"]: c for c in proposal.conflicts}
    assert by_path["notes.txt"]["kind"] == "content"
    # git reports the mesh as both added on each side and binary; the more telling kind wins.
    assert by_path["part.stl"]["kind"] == "binary"
    with pytest.raises(Conflict) as refused:
        proposals.proposal_merge(proposal=proposal, user=alice)
    assert "notes.txt" in refused.value.message and refused.value.extra["conflicts"]
    assert upstream.repo.branch_head("main") == before


def test_a_cad_file_edited_in_different_places_conflicts_as_a_whole_file(upstream, fork, alice, bob):
    """A text diff would merge these two STEP edits cleanly; the hub refuses to, and says why."""
    commit_files(
        fork, {"bracket.step": STEP.replace("#1=POINT(0,0,0)", "#1=POINT(0,0,9)")}, "Fork", author=bob
    )
    commit_files(upstream, {"bracket.step": STEP.replace("#5=POINT(4,0,0)", "#5=POINT(4,9,0)")}, "Up")
    proposal = propose(fork, upstream, bob)

    assert proposal.merge_state == "conflict"
    [conflict] = proposal.conflicts
    assert conflict["path"] == "bracket.step" and conflict["kind"] == "binary"
    assert "whole files" in conflict["message"]


def test_the_same_edits_in_a_text_file_merge_cleanly(upstream, fork, alice, bob):
    commit_files(fork, {"notes.txt": TEXT.replace("line 1", "one")}, "Fork", author=bob)
    commit_files(upstream, {"notes.txt": TEXT.replace("line 7", "seven")}, "Up")
    assert propose(fork, upstream, bob).merge_state == "clean"


def test_an_lfs_file_changed_on_both_sides_is_reported_as_a_whole_file_conflict(
    upstream, fork, alice, bob, settings
):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 10
    commit_files(fork, {"shell.bin": b"fork version " * 4}, "Fork", author=bob)
    commit_files(upstream, {"shell.bin": b"upstream version " * 4}, "Up")
    proposal = propose(fork, upstream, bob)
    kinds = {c["path"]: c["kind"] for c in proposal.conflicts}
    assert kinds["shell.bin"] == "lfs"


def test_merging_refuses_when_the_target_moved_after_review(upstream, fork, alice, bob):
    commit_files(fork, {"a.txt": "fork"}, "Fork", author=bob)
    proposal = propose(fork, upstream, bob)
    reviewed_target = proposal.target_sha
    moved = commit_files(upstream, {"b.txt": "up"}, "Meanwhile")

    with pytest.raises(Conflict) as refused:
        proposals.proposal_merge(proposal=proposal, user=alice, expected_target=reviewed_target)
    assert refused.value.extra["target_head"] == moved
    assert upstream.repo.branch_head("main") == moved
    proposal.refresh_from_db()
    assert proposal.target_sha == moved and proposal.merge_state == "clean"


def test_a_branch_moving_during_the_merge_is_never_overwritten(upstream, fork, alice, bob, monkeypatch):
    commit_files(fork, {"notes.txt": TEXT.replace("line 1", "fork")}, "Fork", author=bob)
    commit_files(upstream, {"other.txt": "x"}, "Up")
    proposal = propose(fork, upstream, bob)
    real_merge_tree = Repository.merge_tree
    raced = {}

    def merge_then_race(self, ours, theirs, **kwargs):
        result = real_merge_tree(self, ours, theirs, **kwargs)
        if not raced:
            raced["sha"] = commit_files(upstream, {"race.txt": "someone else"}, "Concurrent commit")
        return result

    monkeypatch.setattr(Repository, "merge_tree", merge_then_race)
    with pytest.raises(Conflict) as refused:
        proposals.proposal_merge(proposal=proposal, user=alice)
    assert "moved while merging" in refused.value.message
    assert upstream.repo.branch_head("main") == raced["sha"]
    proposal.refresh_from_db()
    assert proposal.status == "open" and proposal.target_sha == raced["sha"]


def test_new_commits_pushed_to_the_fork_show_up_in_the_proposal(
    upstream, fork, alice, bob, django_capture_on_commit_callbacks
):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    proposal = propose(fork, upstream, bob)
    assert proposal.commit_count == 1
    with django_capture_on_commit_callbacks(execute=True):
        newer = commit_files(fork, {"b.txt": "2"}, "Two", author=bob)

    proposal.refresh_from_db()
    assert proposal.head_sha == newer and proposal.commit_count == 2
    assert [c.summary for c in selectors.proposal_commits(proposal)] == ["Two", "One"]


def test_a_moved_branch_is_noticed_when_the_proposal_is_read(upstream, fork, alice, bob):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    proposal = propose(fork, upstream, bob)
    newer = commit_files(fork, {"b.txt": "2"}, "Two", author=bob)
    assert selectors.proposal_is_stale(proposal)
    assert proposals.proposal_fresh(proposal).head_sha == newer


def test_a_proposal_between_two_branches_of_one_design(upstream, alice):
    services.branch_create(design=upstream, user=alice, name="draft")
    head = commit_files(upstream, {"draft.txt": "d"}, "Draft", branch="draft")
    proposal = proposals.proposal_create(target=upstream, user=alice, source_branch="draft", title="Draft")
    assert proposal.source == upstream and proposal.merge_state == "fast-forward"
    assert proposals.proposal_merge(proposal=proposal, user=alice) == head


def test_a_proposal_whose_commits_reached_the_target_is_marked_merged(upstream, fork, alice, bob):
    head = commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    proposal = propose(fork, upstream, bob)
    services.branch_create(design=upstream, user=alice, name="side")
    second = proposals.proposal_create(
        target=upstream,
        user=bob,
        source=fork,
        source_branch="main",
        target_branch="side",
        title="Also to side",
    )
    proposals.proposal_merge(proposal=proposal, user=alice)
    upstream.repo.update_ref("refs/heads/side", head, upstream.repo.branch_head("side"))

    second = proposals.proposal_refresh(proposal=second)
    assert second.status == "merged" and second.merged_sha == head


def test_nothing_to_propose_when_the_target_has_every_commit(upstream, fork, bob):
    with pytest.raises(ValidationError, match="Nothing to propose"):
        propose(fork, upstream, bob)


def test_only_one_open_proposal_per_pair_of_branches(upstream, fork, bob):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    propose(fork, upstream, bob)
    with pytest.raises(Conflict, match="already open"):
        propose(fork, upstream, bob)


def test_only_writers_of_the_source_may_propose_its_changes(upstream, fork, bob):
    carol = UserFactory(username="carol")
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    with pytest.raises(PermissionDenied):
        propose(fork, upstream, carol)


def test_only_writers_of_the_target_may_merge(upstream, fork, bob):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    proposal = propose(fork, upstream, bob)
    with pytest.raises(PermissionDenied):
        proposals.proposal_merge(proposal=proposal, user=bob)


def test_a_design_outside_the_fork_network_cannot_propose(upstream, bob):
    stranger = DesignFactory(owner=bob, slug="other")
    commit_files(stranger, {"a.txt": "1"}, "One")
    with pytest.raises(ValidationError, match="not a fork"):
        propose(stranger, upstream, bob)


def test_a_fork_of_a_fork_may_propose_to_the_first_design(upstream, fork, bob):
    carol = UserFactory(username="carol")
    grandchild = services.design_fork(design=fork, user=carol, slug="bracket-c")
    commit_files(grandchild, {"c.txt": "c"}, "C", author=carol)
    assert propose(grandchild, upstream, carol).merge_state == "fast-forward"


def test_the_upstream_serves_the_lfs_objects_a_merged_proposal_brings(upstream, fork, alice, bob, settings):
    from designs.selectors import lfs_objects_served

    settings.FABHUB_LFS_THRESHOLD_BYTES = 10
    commit_files(fork, {"body.bin": b"big binary body " * 10}, "Body", author=bob)
    [oid] = list(fork.lfs_links.values_list("lfs_object__oid", flat=True))
    proposal = propose(fork, upstream, bob)
    proposals.proposal_merge(proposal=proposal, user=alice)
    assert oid in lfs_objects_served(upstream, [oid])


def test_closing_and_reopening(upstream, fork, bob, alice):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    proposal = propose(fork, upstream, bob)
    proposals.proposal_close(proposal=proposal, user=bob)
    with pytest.raises(Conflict):
        proposals.proposal_merge(proposal=proposal, user=alice)
    assert proposals.proposal_reopen(proposal=proposal, user=alice).status == "open"


# -- API ----------------------------------------------------------------------------------


def url(name, *args):
    return reverse(name, args=["alice", "bracket", *args])


def test_the_api_opens_shows_and_merges_a_proposal(upstream, fork, alice, bob, alice_api, bob_api):
    head = commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    created = bob_api.post(
        url("api-design-proposals"),
        {
            "title": "Stronger",
            "description": "**More** ribs",
            "source": "bob/bracket",
            "source_branch": "main",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["number"] == 1 and body["merge_state"] == "fast-forward" and body["head"] == head

    assert alice_api.get(url("api-design-proposals")).json()["count"] == 1
    diff = alice_api.get(url("api-design-proposal-diff", 1)).json()
    assert [f["path"] for f in diff["files"]] == ["a.txt"]
    commits = alice_api.get(url("api-design-proposal-commits", 1)).json()
    assert [c["sha"] for c in commits] == [head]
    comment = bob_api.post(url("api-design-proposal-comments", 1), {"body": "Ready"}, format="json")
    assert comment.status_code == 201

    merged = alice_api.post(url("api-design-proposal-merge", 1), {"expected_head": head}, format="json")
    assert merged.status_code == 200, merged.content
    assert merged.json()["sha"] == head and merged.json()["proposal"]["status"] == "merged"


def test_the_api_answers_409_with_the_conflicting_files(upstream, fork, alice, bob, alice_api):
    commit_files(fork, {"notes.txt": "fork\n"}, "Fork", author=bob)
    commit_files(upstream, {"notes.txt": "up\n"}, "Up")
    propose(fork, upstream, bob)
    answer = alice_api.post(url("api-design-proposal-merge", 1), {}, format="json")
    assert answer.status_code == 409
    assert [c["path"] for c in answer.json()["conflicts"]] == ["notes.txt"]


def test_the_api_answers_409_when_the_reviewed_head_moved(upstream, fork, alice, bob, alice_api):
    old = commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    propose(fork, upstream, bob)
    commit_files(fork, {"a.txt": "2"}, "Two", author=bob)
    answer = alice_api.post(url("api-design-proposal-merge", 1), {"expected_head": old}, format="json")
    assert answer.status_code == 409 and answer.json()["head"] != old
    assert upstream.repo.branch_head("main") != old


def test_closing_through_the_api(upstream, fork, bob, bob_api):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    propose(fork, upstream, bob)
    answer = bob_api.patch(url("api-design-proposal", 1), {"status": "closed"}, format="json")
    assert answer.status_code == 200 and answer.json()["status"] == "closed"


def test_proposals_of_a_private_design_are_404_for_strangers(alice, bob, bob_api):
    design = DesignFactory(owner=alice, slug="bracket", visibility="private")
    commit_files(design, {"a.txt": "1"}, "One")
    services.branch_create(design=design, user=alice, name="x")
    commit_files(design, {"b.txt": "1"}, "Two", branch="x")
    proposals.proposal_create(target=design, user=alice, source_branch="x", title="X")
    assert bob_api.get(url("api-design-proposal", 1)).status_code == 404
    assert bob_api.get(url("api-design-proposals")).status_code == 404


def test_a_read_only_token_cannot_merge(upstream, fork, alice, bob):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    propose(fork, upstream, bob)
    reader = client_for(alice, scope="read")
    assert reader.post(url("api-design-proposal-merge", 1), {}, format="json").status_code == 403


def test_listing_proposals_takes_a_fixed_number_of_queries(
    upstream, alice, api, django_assert_max_num_queries
):
    for n in range(3):
        services.branch_create(design=upstream, user=alice, name=f"b{n}")
        commit_files(upstream, {f"f{n}.txt": "x"}, "x", branch=f"b{n}")
        proposals.proposal_create(target=upstream, user=alice, source_branch=f"b{n}", title=f"P{n}")
    with django_assert_max_num_queries(6) as few:
        assert len(api.get(url("api-design-proposals")).json()["results"]) == 3
    for n in range(3, 6):
        services.branch_create(design=upstream, user=alice, name=f"b{n}")
        commit_files(upstream, {f"f{n}.txt": "x"}, "x", branch=f"b{n}")
        proposals.proposal_create(target=upstream, user=alice, source_branch=f"b{n}", title=f"P{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(url("api-design-proposals")).json()["results"]) == 6


# -- pages --------------------------------------------------------------------------------


def test_a_proposal_is_opened_reviewed_and_merged_from_the_pages(client, upstream, fork, alice, bob):
    head = commit_files(fork, {"notes.txt": TEXT + "line 8\n"}, "Add a line", author=bob)
    client.force_login(bob)
    assert client.get(url("design-proposals")).status_code == 200
    form = client.get(url("design-proposal-new") + "?source=bob/bracket&branch=main")
    assert form.status_code == 200 and "bob/bracket" in form.content.decode()
    opened = client.post(
        url("design-proposal-new"),
        {
            "source": "bob/bracket",
            "source_branch": "main",
            "target_branch": "main",
            "title": "One more line",
            "description": "Because **eight** is better.",
        },
    )
    assert opened.status_code == 302 and opened.url == url("design-proposal", 1)
    client.post(url("design-proposal", 1), {"action": "comment", "body": "Please merge <script>x</script>"})

    client.force_login(alice)
    page = client.get(url("design-proposal", 1)).content.decode()
    assert "<strong>eight</strong>" in page and "Merge into main" in page and head in page
    assert "<script>x" not in page and "Please merge" in page
    assert "notes.txt" in page  # the diff
    client.post(
        url("design-proposal", 1),
        {"action": "merge", "expected_head": head, "expected_target": upstream.repo.branch_head("main")},
    )
    assert upstream.repo.branch_head("main") == head
    assert "Merged" in client.get(url("design-proposal", 1)).content.decode()


def test_the_page_lists_conflicts_in_plain_words_and_offers_no_merge(client, upstream, fork, alice, bob):
    commit_files(fork, {"bracket.step": STEP.replace("#1=", "#11=")}, "Fork", author=bob)
    commit_files(upstream, {"bracket.step": STEP.replace("#5=", "#55=")}, "Up")
    propose(fork, upstream, bob)
    client.force_login(alice)
    page = client.get(url("design-proposal", 1)).content.decode()
    assert "bracket.step" in page and "conflict as whole files" in page
    assert "Merge into main" not in page


def test_a_stale_merge_button_gives_a_message_not_a_merge(client, upstream, fork, alice, bob):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    proposal = propose(fork, upstream, bob)
    commit_files(upstream, {"b.txt": "2"}, "Meanwhile")
    moved_to = upstream.repo.branch_head("main")
    client.force_login(alice)
    response = client.post(
        url("design-proposal", 1),
        {
            "action": "merge",
            "expected_head": proposal.head_sha,
            "expected_target": proposal.target_sha,
        },
        follow=True,
    )
    assert "has moved since you reviewed" in response.content.decode()
    assert upstream.repo.branch_head("main") == moved_to


def test_the_header_counts_open_proposals(client, upstream, fork, bob):
    commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    propose(fork, upstream, bob)
    page = client.get(reverse("design-detail", args=["alice", "bracket"])).content.decode()
    assert 'Proposals <span class="badge">1</span>' in page


def test_anonymous_visitors_read_proposals_of_public_designs_but_cannot_act(client, upstream, fork, bob):
    head = commit_files(fork, {"a.txt": "1"}, "One", author=bob)
    propose(fork, upstream, bob)
    assert "Improve it" in client.get(url("design-proposals")).content.decode()
    page = client.get(url("design-proposal", 1)).content.decode()
    assert "Log in</a> to comment" in page and "Merge into main" not in page
    refused = client.post(url("design-proposal", 1), {"action": "merge", "expected_head": head})
    assert refused.status_code == 403
    assert upstream.repo.branch_head("main") != head
