"""Git LFS with the stock git and git-lfs clients against a real server."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from designs import services
from designs.lfs_store import lfs_store, resolve_pointer
from designs.models import DesignLfsObject
from hub import services as hub_services
from tests.factories import DesignFactory, UserFactory, commit_files, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MB = 1024 * 1024


@pytest.fixture
def lfs_git(git):
    """The git fixture with git-lfs's filters in its (throw-away) global config."""
    git("lfs", "install", "--skip-repo")
    return git


def person(**kwargs):
    user = UserFactory(**kwargs)
    _, user.raw_token = hub_services.token_create(user=user, name="git")
    return user


@pytest.fixture
def maker():
    return person()


@pytest.fixture
def design(maker):
    design = DesignFactory(owner=maker)
    commit_files(design, {"README.md": "# Rover\n"}, "Start")
    return design


def url_for(hub_server, design, user=None):
    return hub_server.repo_url(
        design.owner.username,
        design.slug,
        user=user.username if user else None,
        token=user.raw_token if user else None,
    )


def clone_for_lfs(git, url: str, name: str) -> Path:
    git("clone", url, name)
    work = git.home / name
    git("lfs", "install", "--local", cwd=work)
    git("lfs", "track", "*.step", cwd=work)
    return work


def write_random(path: Path, size: int) -> str:
    """Random content of `size` bytes; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(0, size, MB):
            chunk = os.urandom(min(MB, size - out.tell()))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def committed_pointer(design, path: str):
    entry = design.repo.entry(design.repo.branch_head("main"), path)
    return resolve_pointer(design.repo.read_blob(entry.sha))


def store_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def basic(user) -> str:
    return "Basic " + base64.b64encode(f"{user.username}:{user.raw_token}".encode()).decode()


def lfs_request(hub_server, design, path: str, *, method="POST", body=None, user=None, data=None):
    """(status, headers, parsed JSON or bytes) of a raw request to the design's LFS API."""
    request = urllib.request.Request(
        f"{hub_server.url}/{design.owner.username}/{design.slug}.git/info/lfs/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else data,
        headers={"Content-Type": "application/vnd.git-lfs+json", "Accept": "application/vnd.git-lfs+json"},
    )
    if user is not None:
        request.add_header("Authorization", basic(user))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    if headers.get("Content-Type", "").startswith("application/vnd.git-lfs+json"):
        return status, headers, json.loads(raw or b"{}")
    return status, headers, raw


def test_a_50_mb_file_goes_up_with_git_lfs_and_comes_back_in_a_fresh_clone(
    hub_server, design, maker, lfs_git
):
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    digest = write_random(work / "cad" / "chassis.step", 50 * MB)
    git("add", ".", cwd=work)
    git("commit", "-m", "Chassis in STEP", cwd=work)
    started = time.monotonic()
    git("push", "origin", "main", cwd=work)
    pushed = time.monotonic()

    pointer = committed_pointer(design, "cad/chassis.step")
    assert pointer == (digest, 50 * MB)
    store = lfs_store()
    assert store.size(digest) == 50 * MB
    assert store_files(store.root / "tmp") == []
    assert DesignLfsObject.objects.filter(design=design, lfs_object__oid=digest).exists()

    git("clone", url_for(hub_server, design), "fresh")
    cloned = time.monotonic()
    fresh = git.home / "fresh" / "cad" / "chassis.step"
    assert fresh.stat().st_size == 50 * MB
    assert sha256_of(fresh) == digest
    print(f"50 MB LFS push {pushed - started:.1f}s, fresh clone {cloned - pushed:.1f}s")


def test_git_lfs_pushes_and_pulls_with_its_locking_api(hub_server, design, maker, lfs_git):
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    write_random(work / "wheel.step", 64 * 1024)
    git("add", ".", cwd=work)
    git("commit", "-m", "Wheel", cwd=work)
    result = git("push", "origin", "main", cwd=work)
    assert "does not support the Git LFS locking API" not in result.stderr

    git("lfs", "lock", "wheel.step", cwd=work)
    listed = json.loads(git("lfs", "locks", "--json", cwd=work).stdout)
    assert [(lock["path"], lock["owner"]["name"]) for lock in listed] == [("wheel.step", maker.username)]
    git("lfs", "unlock", "wheel.step", cwd=work)
    assert json.loads(git("lfs", "locks", "--json", cwd=work).stdout) == []


def test_a_corrupted_upload_is_refused_and_nothing_partial_stays(hub_server, design, maker, lfs_git):
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    digest = write_random(work / "frame.step", 2 * MB)
    git("add", ".", cwd=work)
    git("commit", "-m", "Frame", cwd=work)
    # Corrupt git-lfs's local copy: same size, other bytes, so the oid no longer matches.
    local = work / ".git" / "lfs" / "objects" / digest[0:2] / digest[2:4] / digest
    local.chmod(0o644)
    local.write_bytes(os.urandom(2 * MB))
    head = design.repo.branch_head("main")
    store = lfs_store()
    before = store_files(store.root)

    # git-lfs retries a refused upload (8 times by default, with backoff): once is enough here.
    git("config", "lfs.transfer.maxretries", "1", cwd=work)
    result = git("push", "origin", "main", cwd=work, check=False)

    assert result.returncode != 0
    assert f"The content does not match object {digest}" in result.stderr
    assert not store.exists(digest)
    assert store_files(store.root) == before  # no object and no temporary file
    assert design.repo.branch_head("main") == head


def test_a_wrong_body_put_directly_is_refused_with_nothing_left(hub_server, design, maker):
    content = os.urandom(300 * 1024)
    oid = hashlib.sha256(content).hexdigest()
    status, _, batch = lfs_request(
        hub_server,
        design,
        "objects/batch",
        user=maker,
        body={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(content)}]},
    )
    assert status == 200
    action = batch["objects"][0]["actions"]["upload"]
    before = store_files(lfs_store().root)
    for body in (os.urandom(len(content)), content[:-1], content + b"x"):
        request = urllib.request.Request(action["href"], data=body, method="PUT", headers=action["header"])
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 400
    assert store_files(lfs_store().root) == before

    # A chunked upload (no Content-Length) is checked against the size in the href.
    host, port = hub_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request(
        "PUT",
        action["href"].removeprefix(hub_server.url),
        body=iter([content[:1000], content[1000:]]),
        headers=action["header"],
        encode_chunked=True,
    )
    assert connection.getresponse().status == 200
    assert lfs_store().size(oid) == len(content)


def test_a_private_design_s_objects_are_hidden_from_strangers(hub_server, maker, lfs_git):
    git = lfs_git
    secret = DesignFactory(owner=maker, visibility="private")
    commit_files(secret, {"README.md": "secret\n"})
    work = clone_for_lfs(git, url_for(hub_server, secret, maker), "work")
    digest = write_random(work / "gearbox.step", 128 * 1024)
    git("add", ".", cwd=work)
    git("commit", "-m", "Gearbox", cwd=work)
    git("push", "origin", "main", cwd=work)

    # The stranger has the pointers (say, a copy made while they were a collaborator)
    # but not the content.
    git("clone", url_for(hub_server, secret, maker), "copy", env={"GIT_LFS_SKIP_SMUDGE": "1"})
    copy = git.home / "copy"
    stranger = person()
    git("remote", "set-url", "origin", url_for(hub_server, secret, stranger), cwd=copy)
    pulled = git("lfs", "pull", "origin", cwd=copy, check=False)
    assert pulled.returncode != 0
    assert resolve_pointer((copy / "gearbox.step").read_bytes()) is not None  # still only a pointer

    request = {"operation": "download", "objects": [{"oid": digest, "size": 128 * 1024}]}
    assert lfs_request(hub_server, secret, "objects/batch", body=request, user=stranger)[0] == 404
    anonymous_status, anonymous_headers, _ = lfs_request(hub_server, secret, "objects/batch", body=request)
    assert anonymous_status == 401 and anonymous_headers["WWW-Authenticate"] == 'Basic realm="fabhub"'
    assert lfs_request(hub_server, secret, f"objects/{digest}", method="GET", user=stranger)[0] == 404
    assert lfs_request(hub_server, secret, f"objects/{digest}", method="GET")[0] == 401
    status, _, content = lfs_request(hub_server, secret, f"objects/{digest}", method="GET", user=maker)
    assert status == 200 and hashlib.sha256(content).hexdigest() == digest


def test_a_reader_downloads_objects_but_cannot_upload(hub_server, design, maker, lfs_git):
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    digest = write_random(work / "hub.step", 64 * 1024)
    git("add", ".", cwd=work)
    git("commit", "-m", "Hub", cwd=work)
    git("push", "origin", "main", cwd=work)

    reader = person()
    services.collaborator_set(design=design, actor=maker, user=reader, role="read")
    mine = clone_for_lfs(git, url_for(hub_server, design, reader), "mine")
    assert sha256_of(mine / "hub.step") == digest
    new_digest = write_random(mine / "spoke.step", 64 * 1024)
    git("add", ".", cwd=mine)
    git("commit", "-m", "Spoke", cwd=mine)
    head = design.repo.branch_head("main")

    result = git("push", "origin", "main", cwd=mine, check=False)

    assert result.returncode != 0
    assert "403" in result.stderr or "read access only" in result.stderr
    assert not lfs_store().exists(new_digest)
    assert design.repo.branch_head("main") == head


def test_a_fork_serves_its_parent_s_objects_without_copying_them(hub_server, design, maker, lfs_git):
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    digest = write_random(work / "motor.step", 256 * 1024)
    git("add", ".", cwd=work)
    git("commit", "-m", "Motor", cwd=work)
    git("push", "origin", "main", cwd=work)
    store = lfs_store()
    before = store_files(store.root)

    forker = person()
    fork = services.design_fork(design=design, user=forker, slug="rover-fork")
    git("clone", url_for(hub_server, fork), "forked")

    assert sha256_of(git.home / "forked" / "motor.step") == digest
    assert store_files(store.root) == before
    copies = [p for p in hub_server.data_dir.rglob(digest) if p.is_file()]
    assert copies == [store.path(digest)]


def test_an_object_already_on_the_hub_is_not_uploaded_again(hub_server, design, maker, lfs_git):
    """Pushing the upstream's objects to your fork costs nothing: you can read them."""
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    write_random(work / "axle.step", 64 * 1024)
    git("add", ".", cwd=work)
    git("commit", "-m", "Axle", cwd=work)
    git("push", "origin", "main", cwd=work)
    other = DesignFactory(owner=maker, slug="rover-two")

    git("remote", "add", "two", url_for(hub_server, other, maker), cwd=work)
    result = git("push", "two", "main", cwd=work, env={"GIT_TRACE": "1"})

    assert "/info/lfs/objects/batch" in result.stderr  # git-lfs asked...
    assert not [line for line in result.stderr.splitlines() if "PUT" in line and "/info/lfs/objects/" in line]
    assert committed_pointer(other, "axle.step") is not None
    assert other.lfs_links.count() == 1


def test_a_push_of_pointers_without_their_objects_is_refused_naming_the_file(
    hub_server, design, maker, lfs_git
):
    git = lfs_git
    work = clone_for_lfs(git, url_for(hub_server, design, maker), "work")
    write_random(work / "cad" / "lost.step", 64 * 1024)
    git("add", ".", cwd=work)
    git("commit", "-m", "A mirror that dropped its LFS objects", cwd=work)
    head = design.repo.branch_head("main")

    result = git("push", "origin", "main", cwd=work, check=False, env={"GIT_LFS_SKIP_PUSH": "1"})

    assert result.returncode != 0
    assert (
        "remote: fabhub: cad/lost.step is a Git LFS pointer to an object the hub does not have"
        in result.stderr
    )
    assert design.repo.branch_head("main") == head


def test_a_big_web_upload_becomes_an_lfs_file_that_git_clones_as_content(
    hub_server, design, lfs_git, settings
):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 64 * 1024
    content = os.urandom(1 * MB)
    services.design_commit(
        design=design,
        author=design.owner,
        message="Upload the shell",
        uploads=[upload("body/shell.stl", content)],
    )
    lfs_git("clone", url_for(hub_server, design), "fresh")
    fresh = lfs_git.home / "fresh"
    assert (fresh / "body" / "shell.stl").read_bytes() == content
    assert lfs_git("lfs", "ls-files", "--name-only", cwd=fresh).stdout.split() == ["body/shell.stl"]
