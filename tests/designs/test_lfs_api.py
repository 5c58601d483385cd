"""The Git LFS HTTP API in-process: batch answers, access, transfers, verify and locks."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os

import pytest
from django.test import Client

from designs import services
from designs.lfs_store import lfs_store
from designs.models import DesignLfsObject, LfsLock
from hub import services as hub_services
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

LFS_JSON = "application/vnd.git-lfs+json"


def token_of(user, scope: str = "write") -> str:
    return hub_services.token_create(user=user, name="lfs", scope=scope)[1]


def auth(user, scope: str = "write") -> dict[str, str]:
    raw = base64.b64encode(f"{user.username}:{token_of(user, scope)}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


def lfs_url(design, rest: str) -> str:
    return f"/{design.owner.username}/{design.slug}.git/info/lfs/{rest}"


def post(client: Client, design, rest: str, body: dict, **headers):
    return client.post(lfs_url(design, rest), json.dumps(body), content_type=LFS_JSON, **headers)


def batch(client, design, operation: str, objects: list[dict], **headers):
    return post(
        client,
        design,
        "objects/batch",
        {"operation": operation, "transfers": ["basic"], "objects": objects},
        **headers,
    )


def stored(design, data: bytes) -> str:
    """Put `data` in the store for `design` as an upload would; return its oid."""
    oid = hashlib.sha256(data).hexdigest()
    services.lfs_object_upload(
        design=design, user=design.owner, oid=oid, size=len(data), stream=io.BytesIO(data)
    )
    return oid


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="rover")
    commit_files(design, {"README.md": "# Rover"})
    return design


def test_a_batch_download_gives_absolute_hrefs_with_the_callers_authorization(client, design, alice):
    oid = stored(design, b"wheel" * 100)
    headers = auth(alice)
    response = batch(client, design, "download", [{"oid": oid, "size": 500}], **headers)

    assert response.status_code == 200
    assert response["Content-Type"] == LFS_JSON
    body = response.json()
    assert body["transfer"] == "basic"
    [answer] = body["objects"]
    download = answer["actions"]["download"]
    assert download["href"] == f"http://testserver/alice/rover.git/info/lfs/objects/{oid}"
    assert download["header"] == {"Authorization": headers["HTTP_AUTHORIZATION"]}
    assert download["expires_in"] > 0
    fetched = client.get(download["href"], **headers)
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == b"wheel" * 100


def test_anyone_downloads_the_objects_of_a_public_design_without_credentials(client, design):
    oid = stored(design, b"spoke")
    [answer] = batch(client, design, "download", [{"oid": oid, "size": 5}]).json()["objects"]
    assert "header" not in answer["actions"]["download"]
    assert b"".join(client.get(lfs_url(design, f"objects/{oid}")).streaming_content) == b"spoke"


def test_each_object_gets_its_own_error(client, design, alice):
    known = stored(design, b"axle")
    response = batch(
        client,
        design,
        "download",
        [
            {"oid": known, "size": 4},
            {"oid": "f" * 64, "size": 9},
            {"oid": "NOT-AN-OID", "size": 1},
            {"oid": known, "size": -1},
        ],
        **auth(alice),
    )
    assert response.status_code == 200
    codes = [o.get("error", {}).get("code") for o in response.json()["objects"]]
    assert codes == [None, 404, 422, 422]


def test_an_object_of_another_design_is_not_served_here(client, design, alice):
    other = DesignFactory(owner=alice, slug="other")
    oid = stored(other, b"only in other")
    [answer] = batch(client, design, "download", [{"oid": oid, "size": 13}], **auth(alice)).json()["objects"]
    assert answer["error"]["code"] == 404
    assert client.get(lfs_url(design, f"objects/{oid}"), **auth(alice)).status_code == 404


def test_an_upload_batch_asks_only_for_what_the_hub_lacks(client, design, alice):
    have = stored(design, b"already here")
    lack = "a" * 64
    response = batch(
        client, design, "upload", [{"oid": have, "size": 12}, {"oid": lack, "size": 3}], **auth(alice)
    )
    first, second = response.json()["objects"]
    assert "actions" not in first
    assert second["actions"]["upload"]["href"].endswith(f"/objects/{lack}/3")
    assert second["actions"]["verify"]["href"].endswith("/info/lfs/verify")


def test_an_object_the_pusher_can_read_elsewhere_is_linked_without_an_upload(client, design, alice):
    upstream = DesignFactory(owner=UserFactory(), slug="upstream")
    oid = stored(upstream, b"public gear")
    [answer] = batch(client, design, "upload", [{"oid": oid, "size": 11}], **auth(alice)).json()["objects"]
    assert "actions" not in answer
    assert DesignLfsObject.objects.filter(design=design, lfs_object__oid=oid).exists()


def test_knowing_the_oid_of_a_private_object_is_not_enough_to_claim_it(client, design, alice, bob):
    private = DesignFactory(owner=bob, slug="secret", visibility="private")
    oid = stored(private, b"secret gear")
    [answer] = batch(client, design, "upload", [{"oid": oid, "size": 11}], **auth(alice)).json()["objects"]
    assert "upload" in answer["actions"]  # prove you have the bytes
    assert not DesignLfsObject.objects.filter(design=design, lfs_object__oid=oid).exists()
    # Uploading them does prove it, and costs no second copy on disk.
    put = client.put(
        answer["actions"]["upload"]["href"],
        b"secret gear",
        content_type="application/octet-stream",
        **auth(alice),
    )
    assert put.status_code == 200
    assert DesignLfsObject.objects.filter(design=design, lfs_object__oid=oid).exists()


def test_a_put_stores_a_verified_object_and_verify_confirms_it(client, design, alice):
    data = os.urandom(10_000)
    oid = hashlib.sha256(data).hexdigest()
    headers = auth(alice)
    put = client.put(
        lfs_url(design, f"objects/{oid}/{len(data)}"),
        data,
        content_type="application/octet-stream",
        **headers,
    )
    assert put.status_code == 200
    assert lfs_store().size(oid) == len(data)
    assert post(client, design, "verify", {"oid": oid, "size": len(data)}, **headers).status_code == 200
    assert post(client, design, "verify", {"oid": oid, "size": 1}, **headers).status_code == 404
    assert post(client, design, "verify", {"oid": "b" * 64, "size": 1}, **headers).status_code == 404


def test_a_put_with_the_wrong_content_is_refused_and_leaves_nothing(client, design, alice):
    data = os.urandom(10_000)
    oid = hashlib.sha256(data).hexdigest()
    response = client.put(
        lfs_url(design, f"objects/{oid}/{len(data)}"),
        os.urandom(len(data)),
        content_type="application/octet-stream",
        **auth(alice),
    )
    assert response.status_code == 400
    assert "does not match" in response.json()["message"]
    root = lfs_store().root
    assert [p for p in root.rglob("*") if p.is_file()] == []
    assert not DesignLfsObject.objects.exists()


def test_a_put_over_the_object_limit_is_refused_before_reading(client, design, alice, settings):
    settings.FABHUB_MAX_LFS_OBJECT_BYTES = 100
    data = b"x" * 101
    oid = hashlib.sha256(data).hexdigest()
    response = client.put(
        lfs_url(design, f"objects/{oid}/101"), data, content_type="application/octet-stream", **auth(alice)
    )
    assert response.status_code == 413
    [answer] = batch(client, design, "upload", [{"oid": oid, "size": 101}], **auth(alice)).json()["objects"]
    assert answer["error"]["code"] == 422


def test_anonymous_uploads_are_challenged(client, design):
    response = batch(client, design, "upload", [{"oid": "a" * 64, "size": 1}])
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="fabhub"'
    assert (
        client.put(
            lfs_url(design, f"objects/{'a' * 64}/1"), b"x", content_type="application/octet-stream"
        ).status_code
        == 401
    )


def test_a_reader_and_a_read_only_token_cannot_upload(client, design, alice, bob):
    services.collaborator_set(design=design, actor=alice, user=bob, role="read")
    for headers in (auth(bob), auth(alice, scope="read")):
        response = batch(client, design, "upload", [{"oid": "a" * 64, "size": 1}], **headers)
        assert response.status_code == 403
        assert "read access only" in response.json()["message"]
        put = client.put(
            lfs_url(design, f"objects/{'a' * 64}/1"), b"x", content_type="application/octet-stream", **headers
        )
        assert put.status_code == 403
    assert batch(client, design, "download", [{"oid": "a" * 64, "size": 1}], **auth(bob)).status_code == 200


def test_a_private_design_is_a_404_for_strangers_and_a_challenge_for_anonymous(client, alice, bob):
    secret = DesignFactory(owner=alice, slug="secret", visibility="private")
    oid = stored(secret, b"hidden")
    assert batch(client, secret, "download", [{"oid": oid, "size": 6}], **auth(bob)).status_code == 404
    assert client.get(lfs_url(secret, f"objects/{oid}"), **auth(bob)).status_code == 404
    assert batch(client, secret, "download", [{"oid": oid, "size": 6}]).status_code == 401
    assert client.get(lfs_url(secret, f"objects/{oid}")).status_code == 401
    assert (
        client.get(lfs_url(secret, f"objects/{oid}"), HTTP_AUTHORIZATION="Basic bm9wZTpub3Bl").status_code
        == 401
    )


@pytest.mark.parametrize(
    "body, status",
    [
        ({"operation": "delete", "objects": []}, 422),
        ({"operation": "download", "objects": "all"}, 422),
        ({"operation": "download", "objects": [], "hash_algo": "sha512"}, 409),
        ({"operation": "download", "objects": [], "transfers": ["tus"]}, 422),
        ({"operation": "download", "objects": [{"oid": "a" * 64, "size": 1}] * 1001}, 413),
    ],
)
def test_a_malformed_batch_is_refused(client, design, alice, body, status):
    assert post(client, design, "objects/batch", body, **auth(alice)).status_code == status


def test_a_form_post_is_refused_so_a_session_cannot_be_used_across_sites(client, design, alice):
    client.force_login(alice)
    response = client.post(lfs_url(design, "locks"), {"path": "a.step"})
    assert response.status_code == 415
    assert not LfsLock.objects.exists()


def test_locks_are_taken_listed_verified_and_released(client, design, alice, bob):
    services.collaborator_set(design=design, actor=alice, user=bob, role="write")
    mine, theirs = auth(alice), auth(bob)
    created = post(client, design, "locks", {"path": "cad/body.step"}, **mine)
    assert created.status_code == 201
    lock = created.json()["lock"]
    assert (lock["path"], lock["owner"]) == ("cad/body.step", {"name": "alice"})

    again = post(client, design, "locks", {"path": "cad/body.step"}, **theirs)
    assert again.status_code == 409
    assert again.json()["lock"]["id"] == lock["id"]

    listed = client.get(lfs_url(design, "locks"), {"path": "cad/body.step"}, **theirs).json()
    assert [item["id"] for item in listed["locks"]] == [lock["id"]]
    verified = post(client, design, "locks/verify", {}, **theirs).json()
    assert (verified["ours"], [item["id"] for item in verified["theirs"]]) == ([], [lock["id"]])

    assert post(client, design, f"locks/{lock['id']}/unlock", {}, **theirs).status_code == 403
    assert post(client, design, f"locks/{lock['id']}/unlock", {"force": True}, **theirs).status_code == 403
    assert post(client, design, f"locks/{lock['id']}/unlock", {}, **mine).status_code == 200
    assert not LfsLock.objects.exists()


def test_the_owner_may_break_a_collaborators_lock_with_force(client, design, alice, bob):
    services.collaborator_set(design=design, actor=alice, user=bob, role="write")
    lock = post(client, design, "locks", {"path": "wheel.step"}, **auth(bob)).json()["lock"]
    assert (
        post(client, design, f"locks/{lock['id']}/unlock", {"force": True}, **auth(alice)).status_code == 200
    )


def test_a_reader_lists_locks_but_cannot_take_one(client, design, alice, bob):
    services.collaborator_set(design=design, actor=alice, user=bob, role="read")
    assert client.get(lfs_url(design, "locks"), **auth(bob)).status_code == 200
    assert post(client, design, "locks", {"path": "a.step"}, **auth(bob)).status_code == 403
    assert post(client, design, "locks", {"path": "../escape"}, **auth(alice)).status_code == 400


def test_locks_are_paged_with_a_cursor(client, design, alice):
    for n in range(5):
        post(client, design, "locks", {"path": f"part-{n}.step"}, **auth(alice))
    headers = auth(alice)
    first = client.get(lfs_url(design, "locks"), {"limit": 2}, **headers).json()
    second = client.get(
        lfs_url(design, "locks"), {"limit": 2, "cursor": first["next_cursor"]}, **headers
    ).json()
    third = client.get(
        lfs_url(design, "locks"), {"limit": 2, "cursor": second["next_cursor"]}, **headers
    ).json()
    paths = [lock["path"] for page in (first, second, third) for lock in page["locks"]]
    assert paths == [f"part-{n}.step" for n in range(5)]
    assert third["next_cursor"] == ""


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_read_only_token_sent_as_bearer_or_token_cannot_upload_either(client, design, alice, scheme):
    """The token's scope binds whichever header carries it, not only Basic."""
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {token_of(alice, scope='read')}"}
    response = batch(client, design, "upload", [{"oid": "a" * 64, "size": 1}], **headers)
    assert response.status_code == 403
    assert "read access only" in response.json()["message"]
    assert batch(client, design, "download", [{"oid": "a" * 64, "size": 1}], **headers).status_code == 200
