"""`ObjectReader.tree_changes` and `ObjectReader.all_paths`: what a mirror's refresh reads
with the process it already has open, instead of starting `git diff-tree` and `git ls-tree`.
They must answer what those git commands answer."""

from __future__ import annotations

import subprocess

import pytest

from designs.git import FileEdit, Person, Repository

WHO = Person(name="Ada", email="ada@example.org")
PINNED = "1234567890abcdef1234567890abcdef12345678"


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.init_bare(tmp_path / "design.git", default_branch="main")


def commit(repo: Repository, edits: list[FileEdit]) -> str:
    head = repo.branch_head("main")
    sha = repo.commit_tree(
        repo.build_tree(head, edits), [head] if head else [], "Files", author=WHO, committer=WHO
    )
    repo.update_ref("refs/heads/main", sha, head)
    return sha


def blob(repo: Repository, path: str, data: bytes, mode: str = "100644") -> FileEdit:
    return FileEdit(path, repo.write_blob(data), mode)


def diff_tree(repo: Repository, old: str, new: str) -> dict[str, tuple[str | None, str | None]]:
    """What `git diff-tree -r` says changed, in tree_changes' terms."""
    out = subprocess.run(
        ["git", "diff-tree", "-r", "-z", "--no-renames", old, new],
        cwd=repo.path,
        capture_output=True,
        check=True,
    ).stdout
    tokens = out.split(b"\0")
    changes: dict[str, tuple[str | None, str | None]] = {}
    for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
        old_mode, new_mode = meta[1:].decode().split()[:2]
        changes[path.decode(errors="surrogateescape")] = (
            None if old_mode == "000000" else old_mode,
            None if new_mode == "000000" else new_mode,
        )
    return changes


def test_it_finds_what_diff_tree_finds_between_two_commits(repo):
    before = commit(
        repo,
        [
            blob(repo, "README.md", b"# Car\n"),
            blob(repo, "cad/body/shell.stl", b"solid shell\nendsolid\n"),
            blob(repo, "cad/wheel.stl", b"solid wheel\nendsolid\n"),
            blob(repo, "docs/guide.md", b"Guide\n"),
            blob(repo, "becomes-a-folder", b"a file first\n"),
            blob(repo, "tools/run.sh", b"#!/bin/sh\n"),
            blob(repo, "same/deep/er/file.txt", b"unchanged\n"),
        ],
    )
    after = commit(
        repo,
        [
            blob(repo, "README.md", b"# Car, revised\n"),  # changed
            FileEdit("cad/body/shell.stl", None),  # deleted, and its folder with it
            blob(repo, "cad/new/part.step", b"ISO-10303-21;\n"),  # added in a new folder
            FileEdit("docs/guide.md", None),
            blob(repo, "docs", b"a folder becomes a file\n"),
            FileEdit("becomes-a-folder", None),
            blob(repo, "becomes-a-folder/inside.txt", b"now a folder\n"),
            blob(repo, "tools/run.sh", b"#!/bin/sh\n", mode="100755"),  # mode only
            FileEdit("modules/engine", PINNED, "160000"),  # a submodule
        ],
    )

    with repo.object_reader() as reader:
        changes = reader.tree_changes(before, after)
        backwards = reader.tree_changes(after, before)

    assert changes == diff_tree(repo, before, after)
    assert backwards == diff_tree(repo, after, before)
    assert changes["modules/engine"] == (None, "160000")
    assert changes["tools/run.sh"] == ("100644", "100755")
    assert "same/deep/er/file.txt" not in changes


def test_a_commit_compared_with_itself_or_its_twin_changed_nothing(repo):
    first = commit(repo, [blob(repo, "a/b.txt", b"b\n")])
    twin = commit(repo, [])  # another commit, the same tree

    with repo.object_reader() as reader:
        assert reader.tree_changes(first, first) == {}
        assert reader.tree_changes(first, twin) == {}


def test_it_lists_every_path_as_all_paths_does_names_that_are_not_utf8_included(repo):
    head = commit(
        repo,
        [
            blob(repo, "README.md", b"# Car\n"),
            blob(repo, "cad/body/deep/part.step", b"ISO-10303-21;\n"),
            blob(repo, "cad/wheel.stl", b"solid wheel\nendsolid\n"),
            FileEdit("modules/engine", PINNED, "160000"),
        ],
    )
    # A name git took as bytes that are not UTF-8, written with plumbing.
    latin = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=repo.path, input=b"x\n", capture_output=True, check=True
    ).stdout.strip()
    listing = subprocess.run(
        ["git", "ls-tree", "-z", head], cwd=repo.path, capture_output=True, check=True
    ).stdout
    tree = (
        subprocess.run(
            ["git", "mktree", "-z"],
            cwd=repo.path,
            input=listing + b"100644 blob " + latin + b"\tcaf\xe9.scad\0",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    head = repo.commit_tree(tree, [head], "Latin-1", author=WHO, committer=WHO)

    with repo.object_reader() as reader:
        paths = reader.all_paths(head)

    assert paths == repo.all_paths(head)
    assert "caf\udce9.scad" in paths
