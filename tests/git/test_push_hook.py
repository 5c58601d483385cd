"""The pre-receive hook (designs/hooks/pre-receive) and its other end in the request
(githttp.PushCheck), run as git runs the hook: the real script, its pipes, a real
repository. What a push through git and the hub then refuses is in test_smart_http."""

from __future__ import annotations

import os
import subprocess

import pytest

from designs.git import HOOKS_DIR, ZERO_SHA
from designs.githttp import PushCheck
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db

HOOK = str(HOOKS_DIR / "pre-receive")


@pytest.fixture
def design():
    design = DesignFactory()
    commit_files(design, {"README.md": "# Car\n"}, "Start")
    return design


def run_hook(*, pass_fds: tuple[int, ...] = (), env: dict[str, str] | None = None):
    return subprocess.Popen(
        [HOOK],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=pass_fds,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def checked(design, stdin: bytes) -> tuple[int, str]:
    """The hook's exit status and what it told the pusher, the request checking the push."""
    check = PushCheck(design)
    hook = run_hook(pass_fds=check.for_git, env=check.env)
    check.hand_over()
    _, err = hook.communicate(stdin, timeout=60)
    return hook.returncode, err.decode()


def test_a_push_the_rules_let_in_is_accepted(design):
    head = design.repo.branch_head("main")
    status, said = checked(design, f"{ZERO_SHA} {head} refs/heads/feature\n".encode())
    assert (status, said) == (0, "")


def test_a_push_the_rules_refuse_is_refused_with_their_reasons(design):
    head = design.repo.branch_head("main")
    status, said = checked(design, f"{head} {ZERO_SHA} refs/heads/main\n".encode())
    assert status == 1
    assert "fabhub: main is the default branch and cannot be deleted." in said
    assert "fabhub: push refused; nothing was changed." in said


def test_a_ref_name_with_line_breaks_cannot_end_the_updates_early(design):
    """The first update is one the rules let in; the name after it breaks into an empty
    line and a line "end", which must not end what the hook hands over."""
    head = design.repo.branch_head("main")
    updates = f"{ZERO_SHA} {head} refs/heads/feature\n{ZERO_SHA} {head} refs/heads/x\n\nend\n"
    status, said = checked(design, updates.encode())
    assert status == 1
    assert "end: not a ref update the hub can read." in said


def test_a_ref_name_that_is_not_utf8_is_refused(design):
    head = design.repo.branch_head("main")
    status, said = checked(design, f"{ZERO_SHA} {head} refs/heads/caf".encode() + b"\xe9\n")
    assert status == 1
    assert "refs/heads/caf\\xe9: ref names must be UTF-8 text." in said


def test_a_push_the_rules_cannot_check_is_refused(design):
    missing = "1" * 40
    status, said = checked(design, f"{ZERO_SHA} {missing} refs/heads/feature\n".encode())
    assert status == 1
    assert "the hub could not check this push" in said


def test_the_push_is_refused_if_the_request_ends_before_answering():
    """The request's ends of the pipes close when its process dies: the hook then reads
    no verdict, and refuses."""
    to_request, hook_writes = os.pipe()
    hook_reads, from_request = os.pipe()
    hook = run_hook(
        pass_fds=(hook_writes, hook_reads),
        env={"FABHUB_PUSH_TO": str(hook_writes), "FABHUB_PUSH_FROM": str(hook_reads)},
    )
    os.close(hook_writes)
    os.close(hook_reads)
    hook.stdin.write(f"{ZERO_SHA} {'1' * 40} refs/heads/main\n".encode())
    hook.stdin.close()
    with open(to_request, "rb") as request:
        lines = iter(request.readline, b"")
        assert b"end\n" in lines  # read up to the end of the message, then die
    os.close(from_request)
    assert hook.wait(timeout=60) == 1
    assert "the hub could not check this push; it is refused." in hook.stderr.read().decode()


def test_the_push_is_refused_if_the_request_is_gone_before_the_hook_runs():
    to_request, hook_writes = os.pipe()
    hook_reads, from_request = os.pipe()
    os.close(to_request)
    os.close(from_request)
    hook = run_hook(
        pass_fds=(hook_writes, hook_reads),
        env={"FABHUB_PUSH_TO": str(hook_writes), "FABHUB_PUSH_FROM": str(hook_reads)},
    )
    os.close(hook_writes)
    os.close(hook_reads)
    hook.communicate(f"{ZERO_SHA} {'1' * 40} refs/heads/main\n".encode(), timeout=60)
    assert hook.returncode != 0


def test_a_hook_run_without_the_hubs_pipes_refuses_the_push():
    hook = run_hook()
    _, err = hook.communicate(f"{ZERO_SHA} {'1' * 40} refs/heads/main\n".encode(), timeout=60)
    assert hook.returncode == 1
    assert "did not come through the hub's git service" in err.decode()


def test_an_update_list_cut_short_is_refused_not_checked_as_whole(design, tmp_path):
    """If the hook's relay of git's updates dies half-way (here a `sed` killed after one
    line), the request must not take what arrived as the whole push: the first update
    alone is one the rules let in, the second (deleting main) one they refuse."""
    tools = tmp_path / "bin"
    tools.mkdir()
    dying_sed = tools / "sed"
    dying_sed.write_text('#!/bin/sh\nread -r line\nprintf "update %s\\n" "$line"\nkill -9 $$\n')
    dying_sed.chmod(0o755)
    head = design.repo.branch_head("main")
    check = PushCheck(design)
    hook = run_hook(pass_fds=check.for_git, env={**check.env, "PATH": f"{tools}:{os.environ['PATH']}"})
    check.hand_over()
    updates = f"{ZERO_SHA} {head} refs/heads/feature\n{head} {ZERO_SHA} refs/heads/main\n"
    _, said = hook.communicate(updates.encode(), timeout=60)
    assert hook.returncode != 0, said
