"""The faster reads answer what git answers: a branch read from the ref files rather than
by `git rev-parse`, and a new history's commits and files listed in one git process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from designs.git import ZERO_SHA, Repository
from tests.git.conftest import PLAIN_GIT_ENV
from tests.git.conftest import plain_git as run


def rev_parse(repo: Path, rev: str) -> str | None:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        env={**PLAIN_GIT_ENV, "HOME": str(repo)},
    )
    return proc.stdout.decode().strip() or None


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bare repository with a root commit, a side branch merged back, a deletion and
    folders; its refs packed by the clone. Returns (path, commit name → sha)."""
    work = tmp_path / "work"
    work.mkdir()
    run(work, "init", "--quiet", "--initial-branch=main")
    shas = {}

    def write(path: str, text: str) -> None:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)

    write("README.md", "hello\n")
    write("parts/a.scad", "cube(1);\n")
    run(work, "add", "-A")
    run(work, "commit", "--quiet", "-m", "root")
    shas["root"] = run(work, "rev-parse", "HEAD")
    run(work, "checkout", "--quiet", "-b", "side")
    write("parts/b.stl", "solid b\nendsolid b\n")
    run(work, "add", "-A")
    run(work, "commit", "--quiet", "-m", "side")
    shas["side"] = run(work, "rev-parse", "HEAD")
    run(work, "checkout", "--quiet", "main")
    (work / "README.md").unlink()
    write("docs/c.md", "c\n")
    run(work, "add", "-A")
    run(work, "commit", "--quiet", "-m", "main")
    shas["main"] = run(work, "rev-parse", "HEAD")
    run(work, "merge", "--quiet", "--no-edit", "side")
    shas["merge"] = run(work, "rev-parse", "HEAD")
    bare = tmp_path / "bare.git"
    run(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    return bare, shas


def test_a_branch_read_from_the_ref_files_is_the_one_git_names(history):
    bare, shas = history
    repo = Repository(bare)
    run(bare, "update-ref", "refs/heads/feature/loose", shas["side"])  # loose, in a folder
    for name in ("main", "side", "feature/loose"):
        assert repo.resolve(name) == rev_parse(bare, name)
    assert repo.resolve("main") == shas["merge"]
    assert repo.resolve("feature/loose") == shas["side"]
    assert repo.resolve("feature") is None
    assert repo.resolve("no-such-branch") is None
    assert repo.resolve_ref("refs/heads/side") == shas["side"]
    assert repo.resolve_ref("refs/heads/feature/loose") == shas["side"]


def test_a_tag_or_ref_named_like_a_branch_wins_as_it_does_in_git(history):
    """git tries NAME, refs/NAME and refs/tags/NAME before refs/heads/NAME."""
    bare, shas = history
    repo = Repository(bare)
    run(bare, "update-ref", "refs/tags/main", shas["root"])
    assert rev_parse(bare, "main") == shas["root"]
    assert repo.resolve("main") == shas["root"]
    run(bare, "tag", "-a", "-m", "release", "side", shas["main"])  # annotated: peeled
    assert repo.resolve("side") == rev_parse(bare, "side") == shas["main"]
    run(bare, "update-ref", "refs/heads/x", shas["side"])
    run(bare, "update-ref", "refs/x", shas["root"])
    assert repo.resolve("x") == rev_parse(bare, "x") == shas["root"]


def test_revisions_that_are_not_plain_branch_names_are_left_to_git(history):
    bare, shas = history
    repo = Repository(bare)
    run(bare, "update-ref", f"refs/heads/{shas['root']}", shas["main"])  # a branch named like a sha
    for rev in (
        "HEAD",
        "main~1",
        "main^2",
        "side@{0}",
        shas["root"],
        shas["root"][:10],
        "main:",
        "HEAD^{tree}",
    ):
        assert repo.resolve(rev) == rev_parse(bare, rev), rev
    assert repo.resolve(shas["root"]) == shas["root"]  # the object, not the branch


def test_a_symbolic_branch_is_followed_as_git_follows_it(history):
    bare, shas = history
    repo = Repository(bare)
    run(bare, "symbolic-ref", "refs/heads/alias", "refs/heads/side")
    assert repo.resolve("alias") == rev_parse(bare, "alias") == shas["side"]


def test_new_commits_and_their_files_come_in_one_listing_as_from_the_two_separate_ones(history):
    bare, shas = history
    repo = Repository(bare)
    for tips, exclusions in (
        ([shas["merge"]], []),
        ([shas["merge"]], [f"^{shas['root']}"]),
        ([shas["merge"], shas["side"]], [f"^{shas['main']}"]),
        ([shas["main"]], [f"^{shas['side']}"]),
        ([shas["side"]], [f"^{shas['merge']}"]),
    ):
        commits, blobs = repo.commits_and_blobs(tips, exclusions)
        assert commits == repo.commits_between(tips, exclusions)
        assert blobs == repo.blobs_added_by(commits)
    commits, blobs = repo.commits_and_blobs([shas["merge"]], [])
    paths = {path for _, path in blobs}
    assert paths == {"README.md", "parts/a.scad", "parts/b.stl", "docs/c.md"}
    assert all(sha != ZERO_SHA for sha, _ in blobs)
    assert repo.commits_and_blobs([], []) == ([], [])
