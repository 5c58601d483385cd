"""Every credential scheme on every surface: the same rules for scope, expiry and revocation.

Schemes: the session, `Authorization: Bearer`, `Token`, and Basic (username + token).
Surfaces: the REST API, the raw-file pages, git smart HTTP (the push advertisement, where
git is told whether it may push) and every Git LFS endpoint that writes. A read-only token
is refused every write with the message git shows ("read access only"); a write token is
accepted; an expired or revoked token is refused everywhere, reads included.
Real pushes with the git CLI are in tests/git/test_credential_pushes.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from designs import services
from designs.models import Design, LfsLock
from hub import services as hub_services
from hub.models import AccessToken
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db

LFS_JSON = "application/vnd.git-lfs+json"
READ_ONLY = "read access only"
TOKEN_SCHEMES = ["bearer", "token", "basic"]
BLOB = b"gear" * 64


@pytest.fixture
def design(alice) -> Design:
    # Private, so that every read proves the credential was honoured: anonymous sees nothing.
    design = DesignFactory(owner=alice, slug="rover", visibility=Design.Visibility.PRIVATE)
    commit_files(design, {"README.md": "# Rover"})
    return design


def make_token(user, state: str) -> str:
    """A raw token of `user`: "read", "write", "expired" (write) or "revoked" (write)."""
    scope = AccessToken.Scope.READ if state == "read" else AccessToken.Scope.WRITE
    token, raw = hub_services.token_create(user=user, name=state, scope=scope)
    if state == "expired":
        AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    if state == "revoked":
        hub_services.token_revoke(user=user, token_id=token.pk)
    return raw


def authorization(scheme: str, username: str, raw: str) -> dict[str, str]:
    if scheme == "basic":
        value = "Basic " + base64.b64encode(f"{username}:{raw}".encode()).decode()
    else:
        value = f"{scheme.capitalize()} {raw}"
    return {"HTTP_AUTHORIZATION": value}


# -- the operations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    surface: str  # "api", "git", "lfs" or "page": where the refusal's message is read
    run: Callable[[Client, Design, dict[str, str]], object]
    ok: int


def api(path: str) -> str:
    return f"/api/designs/alice/rover/{path}"


def lfs(path: str) -> str:
    return f"/alice/rover.git/info/lfs/{path}"


def lfs_post(client: Client, path: str, body: dict, headers: dict[str, str]):
    return client.post(lfs(path), json.dumps(body), content_type=LFS_JSON, **headers)


def stored_oid(design: Design) -> str:
    oid = hashlib.sha256(BLOB).hexdigest()
    services.lfs_object_upload(
        design=design, user=design.owner, oid=oid, size=len(BLOB), stream=io.BytesIO(BLOB)
    )
    return oid


def branch_delete(client, design, headers):
    services.branch_create(design=design, user=design.owner, name="old")
    return client.delete(api("branches/old/"), **headers)


def tag_delete(client, design, headers):
    services.tag_create(design=design, user=design.owner, name="v0", target="main", notes="")
    design.allow_tag_changes = True
    design.save(update_fields=["allow_tag_changes"])
    return client.delete(api("tags/v0/"), **headers)


def lfs_put(client, design, headers):
    oid = hashlib.sha256(BLOB).hexdigest()
    return client.put(
        lfs(f"objects/{oid}/{len(BLOB)}"), BLOB, content_type="application/octet-stream", **headers
    )


def lfs_verify(client, design, headers):
    oid = stored_oid(design)
    return lfs_post(client, "verify", {"oid": oid, "size": len(BLOB)}, headers)


def lfs_unlock(client, design, headers):
    lock = services.lfs_lock_create(design=design, user=design.owner, path="frame.stl")
    return lfs_post(client, f"locks/{lock.pk}/unlock", {}, headers)


def lfs_download(client, design, headers):
    oid = stored_oid(design)
    objects = [{"oid": oid, "size": len(BLOB)}]
    return lfs_post(client, "objects/batch", {"operation": "download", "objects": objects}, headers)


WRITES = [
    Operation(
        "api-branch-create",
        "api",
        lambda c, d, h: c.post(api("branches/"), {"name": "feature"}, content_type="application/json", **h),
        201,
    ),
    Operation("api-branch-delete", "api", branch_delete, 204),
    Operation(
        "api-tag-create",
        "api",
        lambda c, d, h: c.post(
            api("tags/"), {"name": "v1", "target": "main"}, content_type="application/json", **h
        ),
        201,
    ),
    Operation("api-tag-delete", "api", tag_delete, 204),
    Operation(
        "api-design-update",
        "api",
        lambda c, d, h: c.patch(api(""), {"description": "Six wheels"}, content_type="application/json", **h),
        200,
    ),
    Operation(
        "git-push",
        "git",
        lambda c, d, h: c.get("/alice/rover.git/info/refs", {"service": "git-receive-pack"}, **h),
        200,
    ),
    Operation(
        "lfs-batch-upload",
        "lfs",
        lambda c, d, h: lfs_post(
            c,
            "objects/batch",
            {
                "operation": "upload",
                "objects": [{"oid": hashlib.sha256(BLOB).hexdigest(), "size": len(BLOB)}],
            },
            h,
        ),
        200,
    ),
    Operation("lfs-object-put", "lfs", lfs_put, 200),
    Operation("lfs-verify", "lfs", lfs_verify, 200),
    Operation("lfs-lock-create", "lfs", lambda c, d, h: lfs_post(c, "locks", {"path": "frame.stl"}, h), 201),
    Operation("lfs-locks-verify", "lfs", lambda c, d, h: lfs_post(c, "locks/verify", {}, h), 200),
    Operation("lfs-unlock", "lfs", lfs_unlock, 200),
]

READS = [
    Operation("api-design-detail", "api", lambda c, d, h: c.get(api(""), **h), 200),
    Operation("page-raw-file", "page", lambda c, d, h: c.get("/alice/rover/raw/README.md", **h), 200),
    Operation(
        "git-fetch",
        "git",
        lambda c, d, h: c.get("/alice/rover.git/info/refs", {"service": "git-upload-pack"}, **h),
        200,
    ),
    Operation("lfs-batch-download", "lfs", lfs_download, 200),
]


def message_of(operation: Operation, response) -> str:
    if operation.surface == "api":
        return response.json()["detail"]
    if operation.surface == "lfs":
        return response.json()["message"]
    return response.content.decode()


def ids(operations: list[Operation]) -> list[str]:
    return [operation.name for operation in operations]


# -- the matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", TOKEN_SCHEMES)
@pytest.mark.parametrize("operation", WRITES, ids=ids(WRITES))
def test_a_write_token_may_write_on_every_surface(client, design, alice, scheme, operation):
    headers = authorization(scheme, alice.username, make_token(alice, "write"))
    response = operation.run(client, design, headers)
    assert response.status_code == operation.ok, response.content


@pytest.mark.parametrize("scheme", TOKEN_SCHEMES)
@pytest.mark.parametrize("operation", WRITES, ids=ids(WRITES))
def test_a_read_token_is_refused_every_write_with_the_message_git_shows(
    client, design, alice, scheme, operation
):
    headers = authorization(scheme, alice.username, make_token(alice, "read"))
    response = operation.run(client, design, headers)
    assert response.status_code == 403, response.content
    assert READ_ONLY in message_of(operation, response)


@pytest.mark.parametrize("state", ["expired", "revoked"])
@pytest.mark.parametrize("scheme", TOKEN_SCHEMES)
@pytest.mark.parametrize("operation", WRITES + READS, ids=ids(WRITES + READS))
def test_an_expired_or_revoked_token_is_refused_everywhere(client, design, alice, scheme, state, operation):
    headers = authorization(scheme, alice.username, make_token(alice, state))
    response = operation.run(client, design, headers)
    # Pages keep a private design's existence secret: a 404, as for anyone without access.
    assert response.status_code == (404 if operation.surface == "page" else 401), response.content


@pytest.mark.parametrize("state", ["read", "write"])
@pytest.mark.parametrize("scheme", TOKEN_SCHEMES)
@pytest.mark.parametrize("operation", READS, ids=ids(READS))
def test_a_read_or_write_token_may_read_on_every_surface(client, design, alice, scheme, state, operation):
    headers = authorization(scheme, alice.username, make_token(alice, state))
    response = operation.run(client, design, headers)
    assert response.status_code == operation.ok, response.content


@pytest.mark.parametrize("operation", WRITES + READS, ids=ids(WRITES + READS))
def test_the_session_may_read_and_write_on_every_surface(client, design, alice, operation):
    client.force_login(alice)
    response = operation.run(client, design, {})
    assert response.status_code == operation.ok, response.content


@pytest.mark.parametrize("surface_op", WRITES + READS, ids=ids(WRITES + READS))
def test_a_token_sent_with_someone_elses_username_is_refused(client, design, alice, bob, surface_op):
    headers = authorization("basic", bob.username, make_token(alice, "write"))
    response = surface_op.run(client, design, headers)
    assert response.status_code == (404 if surface_op.surface == "page" else 401), response.content


def test_a_read_token_leaves_nothing_behind(client, design, alice):
    """Refused writes change nothing: no branch, no tag, no lock, no object."""
    headers = authorization("bearer", alice.username, make_token(alice, "read"))
    for operation in WRITES:
        if operation.name in ("api-branch-create", "api-tag-create", "lfs-lock-create", "lfs-object-put"):
            operation.run(client, design, headers)
    assert [name for name, _ in design.repo.branches()] == ["main"]
    assert list(design.repo.tags()) == []
    assert not LfsLock.objects.filter(design=design).exists()
