"""Real pushes with the stock git client, with a token in each header git can send it in.

The in-process matrix (tests/hub/test_credential_matrix.py) covers every surface; this
checks what a person actually sees: a read-only token's push is refused and git prints
why, a write token's push lands, an expired one is asked to authenticate.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from designs.lfs_store import lfs_store
from designs.models import Design
from hub import services as hub_services
from hub.models import AccessToken
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def maker():
    return UserFactory()


@pytest.fixture
def design(maker) -> Design:
    design = DesignFactory(owner=maker)
    commit_files(design, {"README.md": "# Car\n"}, "Start")
    return design


def raw_token(user, state: str) -> str:
    scope = AccessToken.Scope.READ if state == "read" else AccessToken.Scope.WRITE
    token, raw = hub_services.token_create(user=user, name=state, scope=scope)
    if state == "expired":
        AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    return raw


def push_with(git, hub_server, design, user, scheme: str, state: str):
    """Clone anonymously, commit, push with the token in `scheme`; return git's result."""
    git("clone", hub_server.repo_url(design.owner.username, design.slug), "work")
    work = git.home / "work"
    (work / "wheel.scad").write_text("cylinder(20);\n")
    git("add", ".", cwd=work)
    git("commit", "-m", "Wheel", cwd=work)
    raw = raw_token(user, state)
    if scheme == "basic":
        url = hub_server.repo_url(design.owner.username, design.slug, user=user.username, token=raw)
        return git("push", url, "main", cwd=work, check=False)
    header = f"Authorization: {scheme.capitalize()} {raw}"
    return git("-c", f"http.extraHeader={header}", "push", "origin", "main", cwd=work, check=False)


def head_of(design) -> str:
    return design.repo.commit("main").summary


@pytest.mark.parametrize("scheme", ["bearer", "token", "basic"])
def test_a_read_token_cannot_push_and_git_says_so(hub_server, design, maker, git, scheme):
    result = push_with(git, hub_server, design, maker, scheme, "read")
    assert result.returncode != 0
    assert "read access only" in result.stderr
    assert head_of(design) == "Start"


@pytest.mark.parametrize("scheme", ["bearer", "token", "basic"])
def test_a_write_token_pushes(hub_server, design, maker, git, scheme):
    result = push_with(git, hub_server, design, maker, scheme, "write")
    assert result.returncode == 0, result.stderr
    assert head_of(design) == "Wheel"


@pytest.mark.parametrize("scheme", ["bearer", "token", "basic"])
def test_an_expired_token_cannot_push(hub_server, design, maker, git, scheme):
    result = push_with(git, hub_server, design, maker, scheme, "expired")
    assert result.returncode != 0
    # git answers a 401 by asking for a username (none here) or reporting it failed.
    assert "could not read Username" in result.stderr or "Authentication failed" in result.stderr
    assert head_of(design) == "Start"


def lfs_push_with(git, hub_server, design, user, scheme: str, state: str):
    """As push_with, with a file stored by git-lfs; return git's result and the object's id."""
    git("lfs", "install", "--skip-repo")
    git("clone", hub_server.repo_url(design.owner.username, design.slug), "work")
    work = git.home / "work"
    git("lfs", "track", "*.step", cwd=work)
    content = b"ISO-10303-21;\n" + os.urandom(32 * 1024)
    (work / "chassis.step").write_bytes(content)
    git("add", ".", cwd=work)
    git("commit", "-m", "Chassis", cwd=work)
    raw = raw_token(user, state)
    if scheme == "basic":
        url = hub_server.repo_url(design.owner.username, design.slug, user=user.username, token=raw)
        result = git("push", url, "main", cwd=work, check=False)
    else:
        # git-lfs reads http.extraHeader like git does, so the batch and the upload carry it too.
        header = f"Authorization: {scheme.capitalize()} {raw}"
        result = git("-c", f"http.extraHeader={header}", "push", "origin", "main", cwd=work, check=False)
    return result, hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("scheme", ["bearer", "token", "basic"])
def test_a_read_token_cannot_upload_lfs_objects_and_git_lfs_says_so(hub_server, design, maker, git, scheme):
    result, oid = lfs_push_with(git, hub_server, design, maker, scheme, "read")
    assert result.returncode != 0
    assert "read access only" in result.stderr, result.stderr
    assert not lfs_store().exists(oid)
    assert head_of(design) == "Start"


@pytest.mark.parametrize("scheme", ["bearer", "token", "basic"])
def test_a_write_token_uploads_lfs_objects(hub_server, design, maker, git, scheme):
    result, oid = lfs_push_with(git, hub_server, design, maker, scheme, "write")
    assert result.returncode == 0, result.stderr
    assert lfs_store().exists(oid)
    assert head_of(design) == "Chassis"


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_a_read_token_cannot_take_an_lfs_lock(hub_server, design, maker, git, scheme):
    raw = raw_token(maker, "read")
    git("lfs", "install", "--skip-repo")
    if scheme == "basic":
        url = hub_server.repo_url(design.owner.username, design.slug, user=maker.username, token=raw)
        git("clone", url, "work")
        extra: tuple[str, ...] = ()
    else:
        git("clone", hub_server.repo_url(design.owner.username, design.slug), "work")
        extra = ("-c", f"http.extraHeader=Authorization: Bearer {raw}")
    work = git.home / "work"
    result = git(*extra, "lfs", "lock", "README.md", cwd=work, check=False)
    assert result.returncode != 0
    assert "read access only" in (result.stderr + result.stdout), result.stderr
    assert not design.lfs_locks.exists()
