"""Committing through the service: real bare repositories, real git."""

from __future__ import annotations

import subprocess

import pytest

from designs import services
from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from tests.factories import DesignFactory, commit_files, upload

pytestmark = pytest.mark.django_db


def git(design, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(design.repo_path), *args], check=True, capture_output=True, text=True
    ).stdout


def test_it_creates_a_bare_repository_with_the_default_branch(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    assert design.repo_path.name == "bracket.git"
    assert git(design, "rev-parse", "--is-bare-repository").strip() == "true"
    assert git(design, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_the_first_upload_creates_the_default_branch_authored_as_the_user(alice):
    design = DesignFactory(owner=alice)
    sha = commit_files(design, {"part.stl": b"solid x\nendsolid x\n", "docs/notes.md": "# Notes"}, "First")
    assert git(design, "rev-parse", "main").strip() == sha
    assert (
        git(design, "log", "-1", "--format=%an <%ae>|%s", sha).strip()
        == "Alice Maker <alice@example.org>|First"
    )
    assert sorted(git(design, "ls-tree", "-r", "--name-only", sha).split()) == ["docs/notes.md", "part.stl"]


def test_each_upload_is_one_commit_on_top_of_the_last(alice):
    design = DesignFactory(owner=alice)
    first = commit_files(design, {"a.txt": "1"})
    second = commit_files(design, {"b.txt": "2", "c.txt": "3"}, "Two more")
    assert git(design, "rev-parse", f"{second}^").strip() == first
    assert git(design, "rev-list", "--count", "main").strip() == "2"


def test_delete_and_rename_are_single_commits(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"a.txt": "1", "dir/b.txt": "2", "dir/c.txt": "3"})
    services.design_commit(
        design=design, author=alice, message="Rename", renames=[services.Rename("a.txt", "z.txt")]
    )
    services.design_commit(design=design, author=alice, message="Remove dir", deletes=["dir"])
    assert git(design, "ls-tree", "-r", "--name-only", "main").split() == ["z.txt"]
    status = git(design, "show", "--name-status", "-M", "--format=", "main~1").split()
    assert status[0].startswith("R") and status[1:] == ["a.txt", "z.txt"]


def test_deleting_a_missing_file_is_not_found(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"a.txt": "1"})
    with pytest.raises(NotFound):
        services.design_commit(design=design, author=alice, message="x", deletes=["nope.txt"])


def test_an_expected_parent_that_moved_is_a_conflict_naming_the_head(alice):
    design = DesignFactory(owner=alice)
    first = commit_files(design, {"a.txt": "1"})
    second = commit_files(design, {"a.txt": "2"})
    with pytest.raises(Conflict) as caught:
        commit_files(design, {"b.txt": "3"}, expected_head=first)
    assert caught.value.extra["current_head"] == second
    commit_files(design, {"b.txt": "3"}, expected_head=second)


def test_only_writers_commit(alice, bob):
    design = DesignFactory(owner=alice)
    with pytest.raises(PermissionDenied):
        commit_files(design, {"a.txt": "1"}, author=bob)
    services.collaborator_set(design=design, actor=alice, user=bob, role="read")
    with pytest.raises(PermissionDenied):
        commit_files(design, {"a.txt": "1"}, author=bob)
    services.collaborator_set(design=design, actor=alice, user=bob, role="write")
    commit_files(design, {"a.txt": "1"}, author=bob)


def test_an_upload_identical_to_the_current_files_is_refused_as_empty(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"a.txt": "same"})
    with pytest.raises(ValidationError, match="Nothing changed"):
        commit_files(design, {"a.txt": "same"})


def test_a_commit_to_a_new_branch_of_a_non_empty_design_needs_the_branch(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"a.txt": "1"})
    with pytest.raises(NotFound):
        commit_files(design, {"a.txt": "2"}, branch="feature")
    services.branch_create(design=design, user=alice, name="feature")
    sha = commit_files(design, {"a.txt": "2"}, branch="feature")
    assert design.repo.branch_head("feature") == sha
    assert design.repo.branch_head("main") != sha


def test_a_file_cannot_replace_a_folder_nor_live_under_a_file(alice):
    design = DesignFactory(owner=alice)
    commit_files(design, {"dir/a.txt": "1", "file.txt": "2"})
    with pytest.raises(ValidationError, match="is a folder"):
        commit_files(design, {"dir": "x"})
    with pytest.raises(ValidationError, match="is a file"):
        commit_files(design, {"file.txt/inner.txt": "x"})


def test_the_same_path_twice_in_one_commit_is_refused(alice):
    design = DesignFactory(owner=alice)
    with pytest.raises(ValidationError, match="twice"):
        services.design_commit(
            design=design, author=alice, message="dup", uploads=[upload("a.txt", "1"), upload("a.txt", "2")]
        )
