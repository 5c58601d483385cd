"""Resolving a proposal's conflicts on the hub: keep the target's version, keep the
proposal's, upload a resolved file, or resolve a text file hunk by hunk or by editing it;
the merge commit is authored by the person resolving and lands by compare-and-swap."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from designs import services
from designs.lfs_store import resolve_pointer
from designs.services import conflicts, proposals
from designs.services.conflicts import Resolution
from hub.exceptions import Conflict, PermissionDenied, ValidationError
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

TEXT = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n"
STEP = "ISO-10303-21;\nDATA;\n#1=POINT(0,0,0);\nENDSEC;\nEND-ISO-10303-21;\n"


@pytest.fixture
def upstream(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"notes.txt": TEXT, "bracket.step": STEP, "README.md": "# Bracket\n"}, "Start")
    return design


@pytest.fixture
def fork(upstream, bob):
    return services.design_fork(design=upstream, user=bob)


@pytest.fixture
def conflicted(upstream, fork, bob):
    """A proposal from bob's fork that conflicts in a text file and in a CAD file."""
    commit_files(
        fork,
        {"notes.txt": TEXT.replace("line 4", "fork's 4"), "bracket.step": STEP.replace("0,0,0", "0,0,9")},
        "Fork",
        author=bob,
    )
    commit_files(
        upstream,
        {"notes.txt": TEXT.replace("line 4", "upstream's 4"), "bracket.step": STEP.replace("0,0,0", "9,0,0")},
        "Up",
    )
    proposal = proposals.proposal_create(
        target=upstream, user=bob, source=fork, source_branch="main", title="Longer ribs"
    )
    assert proposal.merge_state == "conflict"
    return proposal


def resolve(proposal, user, *resolutions, **kwargs):
    return conflicts.proposal_resolve(
        proposal=proposal,
        user=user,
        resolutions=list(resolutions),
        expected_head=kwargs.pop("expected_head", proposal.head_sha),
        expected_target=kwargs.pop("expected_target", proposal.target_sha),
        **kwargs,
    )


def read(design, sha, path):
    return design.repo.read_blob(design.repo.entry(sha, path).sha).decode()


def test_the_conflicting_files_are_listed_with_the_hunks_of_the_text_ones(conflicted):
    files = {f.path: f for f in conflicts.proposal_conflict_files(conflicted)}
    assert set(files) == {"notes.txt", "bracket.step"}
    notes = files["notes.txt"]
    assert notes.is_text and notes.conflict_hunks == 1
    [hunk] = [h for h in notes.hunks if h.is_conflict]
    assert hunk.target == "upstream's 4\n" and hunk.source == "fork's 4\n"
    assert "<<<<<<<" in notes.marked_text
    # A CAD file conflicts as a whole file: no hunks offered.
    assert not files["bracket.step"].is_text


def test_keeping_the_target_s_and_the_proposal_s_versions_merges_the_proposal(upstream, conflicted, alice):
    target_before, head = conflicted.target_sha, conflicted.head_sha
    done = resolve(
        conflicted,
        alice,
        Resolution("notes.txt", "target"),
        Resolution("bracket.step", "source"),
    )

    assert done.where == "target" and upstream.repo.branch_head("main") == done.sha
    commit = upstream.repo.commit(done.sha)
    assert commit.parents == [target_before, head]
    assert commit.author.name == "Alice Maker"
    assert "upstream's 4" in read(upstream, done.sha, "notes.txt")
    assert "0,0,9" in read(upstream, done.sha, "bracket.step")
    conflicted.refresh_from_db()
    assert (
        conflicted.status == "merged" and conflicted.merged_sha == done.sha and conflicted.merged_by == alice
    )
    assert upstream.repo.fsck()[0]


def test_a_text_file_is_resolved_hunk_by_hunk(upstream, conflicted, alice):
    done = resolve(
        conflicted,
        alice,
        Resolution("notes.txt", "hunks", hunks=["both"]),
        Resolution("bracket.step", "target"),
    )
    assert read(upstream, done.sha, "notes.txt") == TEXT.replace("line 4\n", "upstream's 4\nfork's 4\n")


def test_a_hunk_choice_must_be_given_for_every_conflicting_stretch(upstream, conflicted, alice):
    before = upstream.repo.branch_head("main")
    with pytest.raises(ValidationError):
        resolve(
            conflicted,
            alice,
            Resolution("notes.txt", "hunks", hunks=[]),
            Resolution("bracket.step", "target"),
        )
    assert upstream.repo.branch_head("main") == before


def test_an_edited_text_file_is_committed_with_its_own_line_endings(upstream, conflicted, alice):
    edited = TEXT.replace("line 4", "both 4s").replace("\n", "\r\n")  # as a browser sends a textarea
    done = resolve(
        conflicted, alice, Resolution("notes.txt", "text", text=edited), Resolution("bracket.step", "source")
    )
    assert read(upstream, done.sha, "notes.txt") == TEXT.replace("line 4", "both 4s")


def test_a_text_with_conflict_markers_left_is_refused(upstream, conflicted, alice):
    marked = next(
        f for f in conflicts.proposal_conflict_files(conflicted) if f.path == "notes.txt"
    ).marked_text
    before = upstream.repo.branch_head("main")
    with pytest.raises(ValidationError) as refused:
        resolve(
            conflicted,
            alice,
            Resolution("notes.txt", "text", text=marked),
            Resolution("bracket.step", "target"),
        )
    assert "conflict markers" in refused.value.message
    assert upstream.repo.branch_head("main") == before


def test_an_uploaded_resolution_is_committed(upstream, conflicted, alice):
    resolved = STEP.replace("0,0,0", "9,0,9")
    done = resolve(
        conflicted,
        alice,
        Resolution("notes.txt", "source"),
        Resolution("bracket.step", "upload", upload=ContentFile(resolved.encode(), name="bracket.step")),
    )
    assert read(upstream, done.sha, "bracket.step") == resolved
    assert "fork's 4" in read(upstream, done.sha, "notes.txt")


def test_a_large_uploaded_resolution_is_stored_with_lfs(upstream, conflicted, alice, settings):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 64
    big = (STEP * 10).encode()
    done = resolve(
        conflicted,
        alice,
        Resolution("notes.txt", "source"),
        Resolution("bracket.step", "upload", upload=ContentFile(big, name="bracket.step")),
    )
    pointer = resolve_pointer(upstream.repo.read_blob(upstream.repo.entry(done.sha, "bracket.step").sha))
    assert pointer is not None and pointer.size == len(big)
    assert "/bracket.step filter=lfs" in read(upstream, done.sha, ".gitattributes")


def test_an_upload_git_refuses_is_refused_with_git_s_words(upstream, conflicted, alice):
    before = upstream.repo.branch_head("main")
    with pytest.raises(ValidationError):
        resolve(
            conflicted,
            alice,
            Resolution("notes.txt", "source"),
            Resolution("bracket.step", "upload"),  # no file chosen
        )
    assert upstream.repo.branch_head("main") == before


def test_every_conflicting_file_needs_a_resolution(upstream, conflicted, alice):
    with pytest.raises(ValidationError) as refused:
        resolve(conflicted, alice, Resolution("notes.txt", "source"))
    assert "bracket.step" in refused.value.message


def test_nothing_is_committed_when_the_target_moved_meanwhile(upstream, conflicted, alice):
    moved = commit_files(upstream, {"other.txt": "new"}, "Meanwhile")
    with pytest.raises(Conflict) as refused:
        resolve(conflicted, alice, Resolution("notes.txt", "source"), Resolution("bracket.step", "source"))
    assert "main has moved" in refused.value.message and "nothing was committed" in refused.value.message
    assert upstream.repo.branch_head("main") == moved
    conflicted.refresh_from_db()
    assert conflicted.status == "open"


def test_nothing_is_committed_when_the_proposal_moved_meanwhile(upstream, fork, conflicted, alice, bob):
    reviewed = conflicted.head_sha
    commit_files(fork, {"more.txt": "more"}, "More", author=bob)
    before = upstream.repo.branch_head("main")
    with pytest.raises(Conflict) as refused:
        resolve(
            conflicted,
            alice,
            Resolution("notes.txt", "source"),
            Resolution("bracket.step", "source"),
            expected_head=reviewed,
        )
    assert "has moved since you started resolving" in refused.value.message
    assert upstream.repo.branch_head("main") == before


def test_a_branch_moving_during_the_commit_is_never_overwritten(upstream, conflicted, alice, monkeypatch):
    real_land = proposals.proposal_land
    sneaked = {}

    def land_after_a_push(**kwargs):
        sneaked["sha"] = commit_files(upstream, {"sneaked.txt": "in"}, "Sneaked in")
        return real_land(**kwargs)

    monkeypatch.setattr(conflicts, "proposal_land", land_after_a_push)
    with pytest.raises(Conflict):
        resolve(conflicted, alice, Resolution("notes.txt", "source"), Resolution("bracket.step", "source"))
    assert upstream.repo.branch_head("main") == sneaked["sha"]


def test_the_author_resolves_on_their_own_branch(upstream, fork, conflicted, bob, alice):
    target_head, head = conflicted.target_sha, conflicted.head_sha
    done = resolve(conflicted, bob, Resolution("notes.txt", "source"), Resolution("bracket.step", "target"))

    assert done.where == "source" and done.branch == "main"
    assert fork.repo.branch_head("main") == done.sha and upstream.repo.branch_head("main") == target_head
    assert fork.repo.commit(done.sha).parents == [head, target_head]
    proposal = proposals.proposal_fresh(conflicted)
    assert proposal.status == "open" and proposal.merge_state == "fast-forward"
    assert proposals.proposal_merge(proposal=proposal, user=alice) == done.sha


def test_others_may_not_resolve(upstream, conflicted):
    stranger = UserFactory(username="carol")
    assert conflicts.resolver_side(conflicted, stranger) is None
    with pytest.raises(PermissionDenied):
        resolve(conflicted, stranger, Resolution("notes.txt", "source"), Resolution("bracket.step", "source"))


def test_a_writer_of_the_source_who_is_not_the_author_may_not_resolve(upstream, fork, conflicted):
    helper = UserFactory(username="dave")
    services.collaborator_set(design=fork, actor=fork.owner, user=helper, role="write")
    assert conflicts.resolver_side(conflicted, helper) is None
    assert conflicts.resolver_side(conflicted, conflicted.author) == "source"
    assert conflicts.resolver_side(conflicted, upstream.owner) == "target"


def test_split_and_join_keep_the_lines_around_the_hunks():
    text = "a\n<<<<<<< ours\nb\n=======\nc\n>>>>>>> theirs\nd\n"
    hunks = conflicts.split_conflict_text(text)
    assert conflicts.join_hunks(hunks, ["target"]) == "a\nb\nd\n"
    assert conflicts.join_hunks(hunks, ["source"]) == "a\nc\nd\n"
    assert conflicts.join_hunks(hunks, ["both"]) == "a\nb\nc\nd\n"
