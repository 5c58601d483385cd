"""The git processes a mirror's refresh starts while its fetch waits for the remote
(`Repository.fetch_quarantined`): a walk of the new commits, a reader, the ref updates
that publish. Started before the objects they read exist, they must find them (loose or
in a pack git writes later); ended without being asked, they must do nothing (a walk
given no revision would walk HEAD; an update given nothing changes nothing); a fetch that
fails ends them all."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from designs.git import (
    NO_ALTERNATE_REFS,
    ZERO_SHA,
    ChangeWalk,
    GitError,
    RefMoved,
    RefUpdates,
    RemoteAccess,
    Repository,
    without_alternate_refs_complaint,
)
from tests.factories import commit_to_repo
from tests.processes import git_children


@pytest.fixture
def source(tmp_path) -> Repository:
    return Repository.init_bare(tmp_path / "source.git", default_branch="main")


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.init_bare(tmp_path / "mirror.git", default_branch="main")


def killed(process: subprocess.Popen[bytes]) -> bool:
    """Whether `process` was stopped by SIGKILL (what `close` sends), rather than left to
    act on its input and end by itself."""
    return process.returncode == -signal.SIGKILL


def watch_output(process: subprocess.Popen[bytes]) -> int:
    """A second descriptor of `process`'s output, to read what it printed once `close` has
    closed the pipe."""
    assert process.stdout is not None
    return os.dup(process.stdout.fileno())


def printed(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as output:
        return output.read()


@pytest.mark.parametrize("unpack_limit", [1, 10_000], ids=["a pack", "loose objects"])
def test_a_walk_and_a_reader_started_before_the_objects_arrive_read_them(source, repo, unpack_limit):
    first = commit_to_repo(source, {"a.txt": b"a\n"})
    tip = commit_to_repo(source, {"parts/b.txt": b"b\n"})
    with ChangeWalk(repo) as walk, repo.object_reader() as reader:
        subprocess.run(
            ["git", "-c", f"fetch.unpackLimit={unpack_limit}", "fetch", "--quiet", str(source.path)]
            + ["refs/heads/main:refs/heads/main"],
            cwd=repo.path,
            check=True,
        )
        packs = list((repo.path / "objects" / "pack").glob("*.pack"))
        assert bool(packs) == (unpack_limit == 1)
        assert walk.commits_and_changes([tip], exclusions=[f"^{first}"]) == repo.commits_and_changes(
            [tip], exclusions=[f"^{first}"]
        )
        assert reader.all_paths(tip) == repo.all_paths(tip) == ["a.txt", "parts/b.txt"]


def test_a_walk_given_no_tip_walks_nothing(repo):
    commit_to_repo(repo, {"a.txt": b"a\n"})  # HEAD names a commit: git would walk it
    with ChangeWalk(repo) as walk:
        process = walk._process()
        output = watch_output(process)
        assert walk.commits_and_changes([], exclusions=[]) == ([], [])
        assert killed(process)
    assert printed(output) == b""
    assert git_children() == []


def test_a_walk_ended_unasked_leaves_no_process(repo):
    commit_to_repo(repo, {"a.txt": b"a\n"})
    with ChangeWalk(repo) as walk:
        process = walk._process()
        output = watch_output(process)
    assert killed(process)
    assert printed(output) == b""
    assert git_children() == []


def test_a_walk_begun_early_answers_as_one_asked_at_once(repo):
    """The rules give the walk its tips first and read the tips' trees while git walks:
    collected afterwards, the answer is the same; asked with other tips, it refuses."""
    first = commit_to_repo(repo, {"a.txt": b"a\n"})
    tip = commit_to_repo(repo, {"parts/b.txt": b"b\n"})
    expected = repo.commits_and_changes([tip], exclusions=[f"^{first}"])
    with ChangeWalk(repo) as walk:
        walk.begin([tip], exclusions=[f"^{first}"])
        assert walk.commits_and_changes([tip], exclusions=[f"^{first}"]) == expected
    with ChangeWalk(repo) as walk:
        walk.begin([tip], exclusions=[f"^{first}"])
        with pytest.raises(GitError, match="other tips"):
            walk.commits_and_changes([first], exclusions=[])
    assert git_children() == []


def test_a_walk_begun_then_abandoned_leaves_no_process(repo):
    """The refresh failed between giving the walk its tips and reading its answer: git,
    blocked on an answer larger than a pipe holds, is stopped."""
    first = commit_to_repo(repo, {"a.txt": b"a\n"})
    tip = commit_to_repo(repo, {f"parts/part-{n:05}.txt": f"{n}\n".encode() for n in range(3_000)})
    with ChangeWalk(repo) as walk:
        walk.begin([tip], exclusions=[f"^{first}"])
        process = walk._process()
        time.sleep(0.2)
        assert process.poll() is None  # its answer (~300 kB) waits to be read
    assert killed(process)
    assert git_children() == []


def test_a_walk_begun_with_a_bad_revision_says_so(repo):
    """git stops reading at a revision it does not know: the rest of a long input meets
    a closed pipe, and git's own message is what the caller gets."""
    tip = commit_to_repo(repo, {"a.txt": b"a\n"})
    exclusions = [f"^{'12' * 20}"] + [f"^{tip}"] * 3_000  # ~130 kB, the first unknown
    with ChangeWalk(repo) as walk:
        walk.begin([tip], exclusions=exclusions)
        with pytest.raises(GitError, match="git log failed: fatal: bad"):
            walk.commits_and_changes([tip], exclusions=exclusions)
    assert git_children() == []


def test_ref_updates_move_every_ref_or_none(repo):
    head = commit_to_repo(repo, {"a.txt": b"a\n"})
    with RefUpdates(repo, "fabhub: test") as updates:
        updates.apply([("refs/heads/copy", head, None), ("refs/tags/v1", head, None)])
    assert repo.refs() == {"refs/heads/main": head, "refs/heads/copy": head, "refs/tags/v1": head}

    with RefUpdates(repo, "fabhub: test") as updates, pytest.raises(RefMoved):
        updates.apply([("refs/heads/other", head, None), ("refs/heads/copy", None, ZERO_SHA[:-1] + "1")])
    assert "refs/heads/other" not in repo.refs()


def test_ref_updates_ended_unasked_change_nothing(repo):
    head = commit_to_repo(repo, {"a.txt": b"a\n"})
    with RefUpdates(repo, "fabhub: test") as updates:
        process = updates._process()
    assert killed(process)
    assert repo.refs() == {"refs/heads/main": head}
    assert git_children() == []


def test_a_fetch_that_fails_ends_the_processes_it_started(repo, monkeypatch):
    commit_to_repo(repo, {"a.txt": b"a\n"})  # HEAD names a commit: a walk left to end would walk it
    started: list[ChangeWalk | RefUpdates] = []
    for kind in (ChangeWalk, RefUpdates):
        monkeypatch.setattr(kind, "__init__", recorded(kind.__init__, started))
    unreachable = RemoteAccess(url="http://127.0.0.1:9/nothing.git", timeout=30)
    with pytest.raises(GitError, match="git fetch failed"):
        with repo.fetch_quarantined(
            unreachable, ["+refs/heads/*:refs/fabhub/mirror/heads/*"], publish_message="fabhub: test"
        ):
            pytest.fail("the block runs only after a fetch that worked")
    assert [type(process) for process in started] == [ChangeWalk, RefUpdates]
    assert all(killed(process._process()) for process in started)
    assert git_children() == []
    assert repo.left_quarantines() == []


def recorded(start, started: list):
    def recording(self, *args, **kwargs):
        start(self, *args, **kwargs)
        started.append(self)

    return recording


def test_ref_updates_given_part_of_their_input_change_nothing(repo):
    """A caller interrupted while it wrote the updates: git must not apply the lines it
    got (with its input closed, update-ref would)."""
    head = commit_to_repo(repo, {"a.txt": b"a\n"})
    updates = RefUpdates(repo, "fabhub: test")
    updates._process().stdin.write(f"update refs/heads/copy {head} {ZERO_SHA}\n".encode())
    updates._process().stdin.flush()
    updates.close()
    assert killed(updates._process())
    assert repo.refs() == {"refs/heads/main": head}
    assert git_children() == []


def test_the_commit_graph_is_started_without_holding_the_follow_ups(repo, monkeypatch):
    """A ref move's follow-ups run while git starts writing the commit-graph: the caller
    is not held while the process starts (slowed here to make it plain)."""
    commit_to_repo(repo, {"a.txt": b"a\n"})
    popen = subprocess.Popen

    def slow_start(*args, **kwargs):
        time.sleep(0.3)
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", slow_start)
    started = time.perf_counter()
    with repo.commit_graph_refreshed():
        entered = time.perf_counter() - started
    assert entered < 0.2
    assert (repo.path / "objects" / "info" / "commit-graphs" / "commit-graph-chain").exists()
    assert repo.depth(repo.branch_head("main")) == 1


def test_a_commit_graph_git_cannot_start_fails_after_the_follow_ups(repo, settings, tmp_path):
    commit_to_repo(repo, {"a.txt": b"a\n"})
    settings.FABHUB_GIT_BINARY = str(tmp_path / "no-git-here")
    ran = []
    with pytest.raises(GitError, match="git cannot start"):
        with repo.commit_graph_refreshed():
            ran.append(True)
    assert ran == [True]


def test_only_git_s_complaint_about_the_alternate_s_refs_is_left_out_of_its_messages():
    """A quarantined fetch names an alternateRefsCommand found nowhere (no process is
    started for it); git's "cannot run" about it is no reason worth showing. A line that
    merely names it stays: a remote's address may."""
    url = f"https://example.org/team/{NO_ALTERNATE_REFS}.git"
    err = (
        f"error: cannot run {NO_ALTERNATE_REFS}: No such file or directory\n"
        f"fatal: repository '{url}/' not found\n"
        f"error: cannot run {NO_ALTERNATE_REFS}: No such file or directory\n"
    )
    assert without_alternate_refs_complaint(err) == f"fatal: repository '{url}/' not found\n"
