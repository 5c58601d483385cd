"""designs/push_rules.py on histories written with plumbing (no check of the hub's), as
a repository from before a rule holds them."""

from __future__ import annotations

import subprocess

import pytest

from designs.push_rules import PushRules, push_errors
from tests.factories import DesignFactory, commit_files
from tests.git.conftest import PLAIN_GIT_ENV

pytestmark = pytest.mark.django_db

RULES = PushRules(default_branch="main", allow_default_branch_rewrite=False, max_blob_bytes=1024 * 1024)


def git_in(repo, *args: str, stdin: bytes = b"") -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, env=PLAIN_GIT_ENV)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


def commit_of(repo, entries: list[bytes], parent: str) -> str:
    tree = git_in(repo, "mktree", "-z", stdin=b"".join(entry + b"\0" for entry in entries))
    return git_in(repo, "commit-tree", tree, "-p", parent, "-m", "as is")


@pytest.fixture
def legacy():
    """A design whose main holds a file name that is not UTF-8 (from before the rule),
    and the blob of a good file."""
    design = DesignFactory()
    commit_files(design, {"README.md": "# Car\n"}, "Start")
    repo = design.repo_path
    start = design.repo.branch_head("main")
    blob = git_in(repo, "hash-object", "-w", "--stdin", stdin=b"cube(1);\n").encode()
    readme = git_in(repo, "ls-tree", start, "README.md").encode()
    bad = commit_of(repo, [readme, b"100644 blob %s\tcaf\xe9.scad" % blob], start)
    git_in(repo, "update-ref", "refs/heads/main", bad)
    return design, bad, readme, blob


def test_a_push_removing_a_name_the_rules_refuse_goes_in(legacy):
    design, bad, readme, _ = legacy
    fixed = commit_of(design.repo_path, [readme], bad)
    assert push_errors(design.repo, [(bad, fixed, "refs/heads/main")], RULES) == []


def test_a_push_changing_a_file_under_such_a_name_is_refused(legacy):
    design, bad, readme, _ = legacy
    other = git_in(design.repo_path, "hash-object", "-w", "--stdin", stdin=b"cube(2);\n").encode()
    changed = commit_of(design.repo_path, [readme, b"100644 blob %s\tcaf\xe9.scad" % other], bad)
    assert push_errors(design.repo, [(bad, changed, "refs/heads/main")], RULES) == [
        "File names must be UTF-8 text: 'caf\\xe9.scad'."
    ]
