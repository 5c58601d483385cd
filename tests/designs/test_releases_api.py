"""The releases API over real repositories and the real object store: list and read
releases with their files, attach a file (multipart), download it, delete it; and each
hostile request refused with nothing left behind."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from designs import selectors, services
from designs.lfs_store import lfs_store
from designs.models import Collaborator, Design, ReleaseAsset
from tests.conftest import client_for
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db

GUIDE = b"# Assembly guide\n\nStep 1: print the arm.\n" * 20


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# Bracket\n", "docs/fit.png": b"\x89PNG"})
    services.tag_create(design=design, user=alice, name="v1.0", target="main", notes="**First** build")
    return design


def assets_url(tag: str = "v1.0", owner: str = "alice", slug: str = "bracket") -> str:
    return reverse("api-design-release-assets", args=[owner, slug, tag])


def asset_url(name: str, tag: str = "v1.0", owner: str = "alice", slug: str = "bracket") -> str:
    return reverse("api-design-release-asset", args=[owner, slug, tag, name])


def attach(client, content: bytes = GUIDE, filename: str = "guide.md", tag: str = "v1.0", **fields):
    return client.post(
        assets_url(tag), {"file": SimpleUploadedFile(filename, content), **fields}, format="multipart"
    )


def test_a_writer_attaches_a_file_stored_by_its_sha256_in_the_lfs_store(alice_api, design):
    response = attach(alice_api)
    assert response.status_code == 201, response.content
    body = response.json()
    digest = hashlib.sha256(GUIDE).hexdigest()
    assert body["name"] == "guide.md"
    assert body["size"] == len(GUIDE)
    assert body["sha256"] == digest
    assert body["content_type"] == "text/markdown"
    assert body["uploaded_by"] == "alice"
    assert body["download_url"].endswith("/alice/bracket/releases/download/v1.0/guide.md")
    with lfs_store().open(digest) as stored:
        assert stored.read() == GUIDE


def test_releases_are_listed_with_rendered_notes_and_their_files(alice_api, design, alice):
    attach(alice_api)
    services.tag_create(design=design, user=alice, name="v1.1", target="main", notes="- fix\n- fit")
    releases = alice_api.get(reverse("api-design-releases", args=["alice", "bracket"])).json()["results"]
    assert [r["name"] for r in releases] == ["v1.1", "v1.0"]
    assert releases[0]["notes_html"] == "<ul>\n<li>fix</li>\n<li>fit</li>\n</ul>"
    assert releases[0]["assets"] == []
    assert [a["name"] for a in releases[1]["assets"]] == ["guide.md"]
    assert "<strong>First</strong> build" in releases[1]["notes_html"]
    assert releases[1]["okh_url"].endswith("/alice/bracket/releases/v1.0/okh.toml")

    one = alice_api.get(reverse("api-design-release", args=["alice", "bracket", "v1.0"])).json()
    assert one["target"] == design.repo.resolve("main")
    assert one["assets"][0]["sha256"] == hashlib.sha256(GUIDE).hexdigest()
    assert alice_api.get(reverse("api-design-release", args=["alice", "bracket", "v9"])).status_code == 404


def test_the_release_list_costs_the_same_queries_however_many_releases_and_files(alice_api, design, alice):
    attach(alice_api)
    url = reverse("api-design-releases", args=["alice", "bracket"])
    with CaptureQueriesContext(connection) as one:
        assert alice_api.get(url).status_code == 200
    for index in range(4):
        services.tag_create(design=design, user=alice, name=f"v2.{index}", target="main", notes="n")
        attach(alice_api, content=b"x%d" % index, filename=f"part-{index}.stl", tag=f"v2.{index}")
    with CaptureQueriesContext(connection) as five:
        releases = alice_api.get(url).json()["results"]
    assert len(releases) == 5 and all(len(r["assets"]) == 1 for r in releases)
    assert len(five.captured_queries) == len(one.captured_queries)


def test_the_release_list_is_paginated_and_renders_only_the_page_s_notes(
    alice_api, design, alice, monkeypatch
):
    for index in range(4):
        services.tag_create(design=design, user=alice, name=f"v2.{index}", target="main", notes=f"*n{index}*")
    rendered = []
    real_notes = selectors.design_release_notes

    def counting(design, tag):
        rendered.append(tag.name)
        return real_notes(design, tag)

    monkeypatch.setattr(selectors, "design_release_notes", counting)
    url = reverse("api-design-releases", args=["alice", "bracket"])
    body = alice_api.get(url, {"per_page": 2}).json()
    assert body["count"] == 5 and body["next"] and body["previous"] is None
    assert [r["name"] for r in body["results"]] == ["v2.3", "v2.2"]
    assert body["results"][0]["notes_html"] == "<p><em>n3</em></p>"
    assert sorted(rendered) == ["v2.2", "v2.3"]
    last = alice_api.get(url, {"per_page": 2, "page": 3}).json()
    assert [r["name"] for r in last["results"]] == ["v1.0"]


def test_a_download_is_an_attachment_with_nosniff_and_ranges(alice_api, design, api):
    attach(alice_api, content=b"<html><script>alert(1)</script></html>", filename="page.html")
    response = api.get(asset_url("page.html"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"<html><script>alert(1)</script></html>"
    assert response["Content-Disposition"] == "attachment; filename*=UTF-8''page.html"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "text/plain"  # HTML is never served as a page
    assert "sandbox" in response["Content-Security-Policy"]
    partial = api.get(asset_url("page.html"), HTTP_RANGE="bytes=6-13")
    assert partial.status_code == 206
    assert b"".join(partial.streaming_content) == b"<script>"
    assert partial["Content-Range"] == "bytes 6-13/38"
    assert api.get(asset_url("page.html"), HTTP_RANGE="bytes=99-").status_code == 416
    page_download = api.get(reverse("design-release-asset", args=["alice", "bracket", "v1.0", "page.html"]))
    assert page_download.status_code == 200
    assert page_download["Content-Disposition"].startswith("attachment;")


def test_a_writer_deletes_a_file_and_it_is_gone(alice_api, design):
    attach(alice_api)
    assert alice_api.delete(asset_url("guide.md")).status_code == 204
    assert alice_api.get(asset_url("guide.md")).status_code == 404
    assert alice_api.delete(asset_url("guide.md")).status_code == 404
    assert not ReleaseAsset.objects.exists()


def test_a_name_in_use_is_refused_until_the_file_is_deleted(alice_api, design):
    assert attach(alice_api).status_code == 201
    again = attach(alice_api, content=b"other bytes")
    assert again.status_code == 409
    assert "delete it first" in again.json()["detail"]
    alice_api.delete(asset_url("guide.md"))
    assert attach(alice_api, content=b"other bytes").status_code == 201


def test_a_file_over_the_size_limit_is_a_413_and_nothing_is_kept(alice_api, design, settings):
    settings.FABHUB_RELEASE_ASSET_MAX_BYTES = 100
    response = attach(alice_api, content=b"x" * 101)
    assert response.status_code == 413
    assert response.json()["limit"] == 100
    assert not ReleaseAsset.objects.exists()
    assert not lfs_store().exists(hashlib.sha256(b"x" * 101).hexdigest())
    assert attach(alice_api, content=b"x" * 100).status_code == 201


def test_a_release_holds_at_most_the_configured_number_of_files(alice_api, design, settings):
    settings.FABHUB_RELEASE_ASSET_MAX_COUNT = 2
    assert attach(alice_api, filename="a.stl").status_code == 201
    assert attach(alice_api, filename="b.stl").status_code == 201
    third = attach(alice_api, filename="c.stl")
    assert third.status_code == 409
    assert "2 files" in third.json()["detail"]


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "parts/arm.stl",
        "..\\arm.stl",
        "..",
        ".",
        "x" * 256,
        " leading-space.stl",
        "bell\x07.stl",
        "nul\x00.stl",
        "new\nline.stl",
        "\u202egpj.exe",  # a right-to-left override: it would read as "exe.jpg"
        "   ",
    ],
)
def test_a_bad_file_name_is_a_400_and_nothing_is_kept(alice_api, design, name):
    response = attach(alice_api, name=name)
    assert response.status_code == 400, (name, response.content)
    assert not ReleaseAsset.objects.exists()


def test_a_path_in_the_uploaded_file_s_own_name_is_dropped_to_its_last_part(alice_api, design):
    for filename in ("../../evil.stl", "..\\..\\evil.stl"):
        response = attach(alice_api, filename=filename)
        assert response.status_code == 201, filename
        assert response.json()["name"] == "evil.stl"
        alice_api.delete(asset_url("evil.stl"))


def test_a_file_cannot_be_attached_to_a_release_that_does_not_exist(alice_api, design):
    assert attach(alice_api, tag="v9").status_code == 404
    assert not ReleaseAsset.objects.exists()


def test_a_stranger_and_a_reader_cannot_attach_nor_delete(alice_api, bob, design):
    attach(alice_api)
    stranger = client_for(bob)
    assert attach(stranger, filename="mine.stl").status_code == 403
    assert stranger.delete(asset_url("guide.md")).status_code == 403
    Collaborator.objects.create(design=design, user=bob, role=Collaborator.Role.READ)
    assert attach(stranger, filename="mine.stl").status_code == 403
    assert stranger.delete(asset_url("guide.md")).status_code == 403
    assert stranger.get(asset_url("guide.md")).status_code == 200
    assert list(ReleaseAsset.objects.values_list("name", flat=True)) == ["guide.md"]


def test_a_read_only_token_and_an_anonymous_client_cannot_attach(alice, api, design):
    assert attach(client_for(alice, scope="read")).status_code == 403
    assert attach(api).status_code in (401, 403)
    assert not ReleaseAsset.objects.exists()


def test_a_write_collaborator_attaches_files(alice_api, bob, design):
    Collaborator.objects.create(design=design, user=bob, role=Collaborator.Role.WRITE)
    response = attach(client_for(bob), filename="bob.stl")
    assert response.status_code == 201
    assert response.json()["uploaded_by"] == "bob"


def test_a_private_design_s_releases_and_files_are_404_to_strangers(alice, alice_api, bob, api, client):
    design = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(design, {"a.txt": "1"})
    services.tag_create(design=design, user=alice, name="v1", target="main", notes="")
    assert attach(alice_api, tag="v1").status_code == 404  # the URL names bracket… not this design
    created = alice_api.post(
        reverse("api-design-release-assets", args=["alice", "secret", "v1"]),
        {"file": SimpleUploadedFile("plan.pdf", b"%PDF-1.4")},
        format="multipart",
    )
    assert created.status_code == 201
    stranger = client_for(bob)
    for client_ in (stranger, api):
        assert client_.get(reverse("api-design-releases", args=["alice", "secret"])).status_code == 404
        assert client_.get(reverse("api-design-release", args=["alice", "secret", "v1"])).status_code == 404
        assert client_.get(asset_url("plan.pdf", tag="v1", slug="secret")).status_code == 404
    upload = stranger.post(
        reverse("api-design-release-assets", args=["alice", "secret", "v1"]),
        {"file": SimpleUploadedFile("x.pdf", b"x")},
        format="multipart",
    )
    assert upload.status_code == 404
    assert stranger.delete(asset_url("plan.pdf", tag="v1", slug="secret")).status_code == 404
    page = client.get(reverse("design-release-asset", args=["alice", "secret", "v1", "plan.pdf"]))
    assert page.status_code == 404
    client.force_login(bob)
    assert (
        client.get(reverse("design-release-asset", args=["alice", "secret", "v1", "plan.pdf"])).status_code
        == 404
    )
    assert alice_api.get(asset_url("plan.pdf", tag="v1", slug="secret")).status_code == 200


def test_a_traversal_in_the_download_address_finds_nothing(alice_api, design, api):
    attach(alice_api)
    for name in ("..%2F..%2Fsettings.py", "%2E%2E", "guide.md%00"):
        response = api.get(f"/alice/bracket/releases/download/v1.0/{name}")
        assert response.status_code == 404, name


def test_an_oversized_file_is_refused_while_it_streams_in(alice_api, design, settings):
    settings.FABHUB_RELEASE_ASSET_MAX_BYTES = 1024 * 1024
    response = attach(alice_api, content=b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413
    # hub.uploads' message: the upload stopped at the limit, before the view read it.
    assert "is larger than the limit of 1,048,576 bytes" in response.json()["detail"]
    assert not ReleaseAsset.objects.exists()


def test_a_nul_in_a_tag_or_a_name_is_a_404_not_an_error(alice_api, design):
    attach(alice_api)
    assert alice_api.get(asset_url("guide.md\0")).status_code == 404
    assert alice_api.get(asset_url("guide.md", tag="v1.0\0")).status_code == 404
    assert alice_api.delete(asset_url("guide.md\0")).status_code == 404
    assert attach(alice_api, tag="v1.0\0").status_code == 404
    assert (
        alice_api.get(reverse("api-design-release", args=["alice", "bracket", "v1.0\0"])).status_code == 404
    )
