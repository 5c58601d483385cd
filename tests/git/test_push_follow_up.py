"""A push's follow-up (designs.githttp.PushAnswer) runs once git's answer has been sent,
under the design's follow-up lock; the server itself is exercised in test_smart_http."""

from __future__ import annotations

import fcntl
import subprocess

import pytest

from designs.githttp import FOLLOW_UP_LOCK, PushAnswer, push_followed_up
from designs.models import Design
from tests.factories import DesignFactory, UserFactory

pytestmark = pytest.mark.django_db


def land_branch(design: Design, branch: str) -> str:
    """Move `branch` of the design's repository to a new commit, as a push's git would."""

    def run(*args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(design.repo_path), *args],
            capture_output=True,
            check=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(design.repo_path)},
        ).stdout.strip()

    tree = run("mktree")
    sha = run(
        "-c", "user.name=Tess", "-c", "user.email=tess@example.org", "commit-tree", tree, "-m", "Pushed"
    )
    run("update-ref", f"refs/heads/{branch}", sha)
    return sha


def lock_is_free(design: Design) -> bool:
    with open(design.repo_path / FOLLOW_UP_LOCK, "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        return True


def test_the_follow_up_runs_after_the_answer_and_holds_the_lock_from_its_end():
    maker = UserFactory()
    design = DesignFactory(owner=maker)
    land_branch(design, "dev")
    answer = PushAnswer(iter([b"000eunpack ok\n", b"0000"]), design=design, refs_before={}, pusher=maker)

    assert b"".join(answer) == b"000eunpack ok\n0000"
    # The answer has ended; the pusher may push again, and that push waits for the lock.
    assert not lock_is_free(design)
    assert Design.objects.get(pk=design.pk).default_branch == "main"

    answer.close()
    assert lock_is_free(design)
    assert Design.objects.get(pk=design.pk).default_branch == "dev"


def test_a_push_whose_client_hung_up_is_followed_up_once_git_has_finished():
    maker = UserFactory()
    design = DesignFactory(owner=maker)
    finished = []

    def git_answer():
        try:
            yield b"000eunpack ok\n"
            yield b"0000"
        finally:
            # Closing the answer waits for git, which may have moved refs meanwhile.
            land_branch(design, "dev")
            finished.append(True)

    answer = PushAnswer(git_answer(), design=design, refs_before={}, pusher=maker)
    chunks = iter(answer)
    next(chunks)  # the client reads a little, then hangs up
    answer.close()

    assert finished == [True]
    assert Design.objects.get(pk=design.pk).default_branch == "dev"
    assert lock_is_free(design)
    push_followed_up(design)  # returns at once: nothing holds the lock
