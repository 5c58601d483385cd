"""Release pages and files: the list, one release with rendered notes, its commit, files
(sizes, sha256, downloads) and manifest; attaching and removing files in the page; files
going with a deleted tag; uploads streamed, never held whole in memory."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designs import selectors, services
from designs.lfs_store import lfs_store
from designs.models import Collaborator, Design, LfsObject, ReleaseAsset
from designs.services import releases
from designs.views import releases as release_views
from hub.exceptions import Conflict, TooLarge
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db

GUIDE = b"Step 1: print the arm.\n"


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="gripper")
    commit_files(design, {"README.md": "# Gripper\n"})
    services.tag_create(
        design=design, user=alice, name="v1.0", target="main", notes="## Changes\n\n- **stronger** arm"
    )
    return design


def release_page(tag: str = "v1.0") -> str:
    return reverse("design-release", args=["alice", "gripper", tag])


def attach(design, user, name: str = "guide.txt", content: bytes = GUIDE, tag: str = "v1.0"):
    with SimpleUploadedFile(name, content) as upload:
        return releases.release_asset_upload(
            design=design,
            user=user,
            tag=tag,
            name=name,
            content=upload,
            content_type="text/plain",
            size=len(content),
        )


def test_the_release_page_shows_notes_commit_files_and_manifest(client, alice, design):
    attach(design, alice)
    page = client.get(release_page()).content.decode()
    assert "<h2>Changes</h2>" in page and "<strong>stronger</strong> arm" in page
    assert "- **stronger**" not in page  # rendered, not raw Markdown
    head = design.repo.resolve("main")
    assert reverse("design-commit", args=["alice", "gripper", head]) in page
    assert reverse("design-release-asset", args=["alice", "gripper", "v1.0", "guide.txt"]) in page
    assert hashlib.sha256(GUIDE).hexdigest() in page
    assert "23\xa0bytes" in page  # filesizeformat of the file's size
    assert reverse("design-release-okh", args=["alice", "gripper", "v1.0"]) in page
    assert client.get(release_page("v9")).status_code == 404


def test_the_releases_page_lists_each_release_with_a_link_to_its_page(client, alice, design):
    attach(design, alice)
    for name in ("design-releases", "design-tags"):
        page = client.get(reverse(name, args=["alice", "gripper"])).content.decode()
        assert release_page() in page
        assert "1 file" in page
        assert "<strong>stronger</strong> arm" in page


def test_making_a_release_in_the_page_leads_to_its_page_to_attach_files(client, alice, design):
    client.force_login(alice)
    response = client.post(
        reverse("design-releases", args=["alice", "gripper"]),
        {"action": "create", "name": "v2.0", "target": "", "notes": "*Second*"},
    )
    assert response.status_code == 302 and response["Location"] == release_page("v2.0")
    assert "<em>Second</em>" in client.get(release_page("v2.0")).content.decode()


def test_a_writer_attaches_and_removes_a_file_in_the_page(client, alice, design):
    client.force_login(alice)
    response = client.post(
        release_page(),
        {"action": "upload", "file": SimpleUploadedFile("arm.stl", b"solid arm\n"), "name": ""},
    )
    assert response.status_code == 302
    asset = ReleaseAsset.objects.get()
    assert (asset.name, asset.size, asset.content_type) == ("arm.stl", 10, "model/stl")
    page = client.get(release_page()).content.decode()
    assert "arm.stl" in page and "Attach a file" in page
    client.post(release_page(), {"action": "delete-file", "name": "arm.stl"})
    assert not ReleaseAsset.objects.exists()


def test_a_refused_upload_in_the_page_says_why(client, alice, design, settings):
    settings.FABHUB_RELEASE_ASSET_MAX_BYTES = 5
    client.force_login(alice)
    response = client.post(
        release_page(),
        {"action": "upload", "file": SimpleUploadedFile("arm.stl", b"solid arm\n"), "name": ""},
        follow=True,
    )
    assert "larger than the limit of 5 bytes" in response.content.decode()
    response = client.post(
        release_page(), {"action": "upload", "file": SimpleUploadedFile("a.stl", b"1"), "name": "a/b.stl"}
    )
    assert "cannot contain &#x27;/&#x27;" in response.content.decode()
    assert not ReleaseAsset.objects.exists()


def test_a_reader_and_a_stranger_get_no_upload_form_and_cannot_post(client, alice, bob, design):
    Collaborator.objects.create(design=design, user=bob, role=Collaborator.Role.READ)
    client.force_login(bob)
    assert "Attach a file" not in client.get(release_page()).content.decode()
    response = client.post(release_page(), {"action": "upload", "file": SimpleUploadedFile("a.stl", b"1")})
    assert response.status_code == 403
    attach(design, alice)
    assert client.post(release_page(), {"action": "delete-file", "name": "guide.txt"}).status_code == 403
    assert ReleaseAsset.objects.count() == 1


def test_a_private_design_s_release_pages_are_404_to_strangers(client, alice, bob):
    design = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(design, {"a.txt": "1"})
    services.tag_create(design=design, user=alice, name="v1", target="main", notes="")
    attach(design, alice, tag="v1")
    urls = [
        reverse("design-releases", args=["alice", "secret"]),
        reverse("design-release", args=["alice", "secret", "v1"]),
        reverse("design-release-asset", args=["alice", "secret", "v1", "guide.txt"]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404
    client.force_login(bob)
    for url in urls:
        assert client.get(url).status_code == 404
    assert (
        client.post(urls[1], {"action": "upload", "file": SimpleUploadedFile("x", b"1")}).status_code == 404
    )
    client.force_login(alice)
    assert client.get(urls[2]).status_code == 200


def test_deleting_a_tag_in_the_page_deletes_its_files(client, alice, design):
    Design.objects.filter(pk=design.pk).update(allow_tag_changes=True)
    attach(design, alice)
    services.tag_create(design=design, user=alice, name="v1.1", target="main", notes="")
    attach(design, alice, tag="v1.1")
    client.force_login(alice)
    client.post(reverse("design-releases", args=["alice", "gripper"]), {"action": "delete", "name": "v1.0"})
    assert list(ReleaseAsset.objects.values_list("tag", flat=True)) == ["v1.1"]
    # A tag made again under the same name starts without files.
    services.tag_create(design=design, user=alice, name="v1.0", target="main", notes="")
    assert client.get(release_page()).status_code == 200
    assert "guide.txt" not in client.get(release_page()).content.decode()


def test_a_tag_deleted_by_a_push_takes_its_files_with_it(alice, design):
    attach(design, alice)
    refs_before = design.repo.refs()
    design.repo.delete_ref("refs/tags/v1.0", refs_before["refs/tags/v1.0"])  # what a push does
    services.design_pushed(design=design, refs_before=refs_before)
    assert not ReleaseAsset.objects.exists()


def test_the_same_name_twice_is_a_conflict_and_the_size_limit_a_413(alice, design, settings):
    attach(design, alice)
    with pytest.raises(Conflict):
        attach(design, alice, content=b"other")
    settings.FABHUB_RELEASE_ASSET_MAX_BYTES = 4
    with pytest.raises(TooLarge):
        attach(design, alice, name="big.txt", content=b"12345")
    # A caller that does not know the size is stopped by the store, one byte past the limit.
    with SimpleUploadedFile("big.txt", b"12345") as upload, pytest.raises(TooLarge):
        releases.release_asset_upload(
            design=design, user=alice, tag="v1.0", name="big.txt", content=upload, content_type="text/plain"
        )
    assert ReleaseAsset.objects.count() == 1


def test_an_upload_streams_to_the_store_without_being_held_in_memory(alice, design, tmp_path, settings):
    settings.FABHUB_RELEASE_ASSET_MAX_BYTES = 64 * 1024 * 1024
    source = tmp_path / "print.3mf"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for index in range(24):
            chunk = bytes([index]) * (1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    tracemalloc.start()
    try:
        with source.open("rb") as content:
            asset = releases.release_asset_upload(
                design=design,
                user=alice,
                tag="v1.0",
                name="print.3mf",
                content=content,
                content_type="model/3mf",
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert asset.size == 24 * 1024 * 1024 and asset.sha256 == digest.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes for a 24 MB file"


def test_the_design_page_shows_the_latest_release_and_its_files(client, alice, design):
    attach(design, alice)
    page = client.get(reverse("design-detail", args=["alice", "gripper"])).content.decode()
    assert "Latest release" in page
    assert release_page() in page
    assert reverse("design-release-asset", args=["alice", "gripper", "v1.0", "guide.txt"]) in page
    bare = DesignFactory(owner=alice, slug="bare")
    commit_files(bare, {"a.txt": "1"})
    assert (
        "Latest release" not in client.get(reverse("design-detail", args=["alice", "bare"])).content.decode()
    )


def test_an_oversized_file_sent_from_the_page_is_stopped_while_it_streams_in(client, alice, design, settings):
    settings.FABHUB_RELEASE_ASSET_MAX_BYTES = 1024 * 1024
    client.force_login(alice)
    big = SimpleUploadedFile("plate.3mf", b"x" * (3 * 1024 * 1024))
    response = client.post(release_page(), {"action": "upload", "file": big, "name": ""}, follow=True)
    assert "is larger than the limit of 1,048,576 bytes" in response.content.decode()
    assert not ReleaseAsset.objects.exists()


def racing_upload(monkeypatch, design, user, name: str = "guide.txt", content: bytes = GUIDE) -> None:
    """While the next upload streams into the store, another upload of `name` finishes."""
    store_class = type(lfs_store())
    real_add = store_class.add

    def add_meanwhile(self, stream, **kw):
        monkeypatch.setattr(store_class, "add", real_add)
        pointer = real_add(self, stream, **kw)
        attach(design, user, name=name, content=content)
        return pointer

    monkeypatch.setattr(store_class, "add", add_meanwhile)


def test_an_upload_refused_under_the_lock_leaves_no_bytes_in_the_store(alice, design, monkeypatch):
    racing_upload(monkeypatch, design, alice)
    other = b"other bytes"
    with pytest.raises(Conflict):
        attach(design, alice, name="guide.txt", content=other)
    assert not lfs_store().exists(hashlib.sha256(other).hexdigest())
    assert lfs_store().exists(hashlib.sha256(GUIDE).hexdigest())


def test_an_upload_refused_because_the_release_filled_up_leaves_no_bytes(
    alice, design, monkeypatch, settings
):
    settings.FABHUB_RELEASE_ASSET_MAX_COUNT = 1
    racing_upload(monkeypatch, design, alice)
    other = b"other bytes"
    with pytest.raises(Conflict, match="the most a release may hold"):
        attach(design, alice, name="other.txt", content=other)
    assert not lfs_store().exists(hashlib.sha256(other).hexdigest())


def test_a_refused_upload_keeps_bytes_that_a_git_lfs_object_or_a_release_file_uses(
    alice, design, monkeypatch
):
    lfs_bytes = b"an LFS object's bytes"
    with SimpleUploadedFile("x", lfs_bytes) as stream:
        pointer = lfs_store().add(stream, max_size=1000)
    LfsObject.objects.create(oid=pointer.oid, size=pointer.size)
    racing_upload(monkeypatch, design, alice)
    with pytest.raises(Conflict):
        attach(design, alice, name="guide.txt", content=lfs_bytes)
    assert lfs_store().exists(pointer.oid)
    racing_upload(monkeypatch, design, alice, name="second.txt")
    with pytest.raises(Conflict):
        attach(design, alice, name="second.txt", content=GUIDE)  # the bytes guide.txt uses
    assert lfs_store().exists(hashlib.sha256(GUIDE).hexdigest())


def test_the_releases_page_shows_a_page_of_releases_and_renders_only_their_notes(
    client, alice, design, monkeypatch
):
    for index in range(4):
        services.tag_create(design=design, user=alice, name=f"v2.{index}", target="main", notes=f"*n{index}*")
    monkeypatch.setattr(release_views, "DESIGNS_PER_PAGE", 2)
    rendered = []
    real_notes = selectors.design_release_notes

    def counting(design, tag):
        rendered.append(tag.name)
        return real_notes(design, tag)

    monkeypatch.setattr(selectors, "design_release_notes", counting)
    url = reverse("design-releases", args=["alice", "gripper"])
    first = client.get(url).content.decode()
    assert "<em>n3</em>" in first and "<em>n2</em>" in first and "<em>n1</em>" not in first
    assert "Page 1 of 3" in first
    assert sorted(rendered) == ["v2.2", "v2.3"]
    last = client.get(url, {"page": 3}).content.decode()
    assert 'id="v1.0"' in last and 'id="v2.3"' not in last
