"""Repository.refs, read from the ref files rather than by a `git for-each-ref` process
(a mirror's refresh reads every ref after each fetch), lists what git lists: loose and
packed refs, annotated tags unpeeled, nested names, deleted refs gone; and it leaves to
git what it cannot read plainly (a symbolic ref)."""

from __future__ import annotations

from pathlib import Path

import pytest

from designs.git import Repository
from tests.git.conftest import plain_git as git


def for_each_ref(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "refs.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(path))
    tree = git(path, "mktree")
    first = git(path, "commit-tree", tree, "-m", "first")
    second = git(path, "commit-tree", tree, "-p", first, "-m", "second")
    git(path, "update-ref", "refs/heads/main", second)
    git(path, "update-ref", "refs/heads/feature/deep/name", first)
    git(path, "update-ref", "refs/fabhub/mirror/heads/main", second)
    git(path, "tag", "-a", "-m", "Release", "v1.0", first)
    git(path, "tag", "light", second)
    git(path, "pack-refs", "--all")
    # After packing: some refs loose again, one moved, one deleted from packed-refs.
    git(path, "update-ref", "refs/heads/main", first)
    git(path, "update-ref", "refs/heads/new", second)
    git(path, "update-ref", "-d", "refs/tags/light")
    return path


def test_the_refs_read_from_the_files_are_those_git_lists(repo):
    expected = for_each_ref(repo)
    assert Repository(repo).refs() == expected
    assert "refs/tags/light" not in expected and "refs/heads/feature/deep/name" in expected


def test_a_symbolic_ref_is_left_to_git(repo):
    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    refs = Repository(repo).refs()
    assert refs == for_each_ref(repo) and refs["refs/heads/alias"] == refs["refs/heads/main"]
