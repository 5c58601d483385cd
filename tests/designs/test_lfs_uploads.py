"""Git LFS without a git client: the object store, and big web/API uploads becoming LFS files."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designs import services
from designs.lfs_store import (
    LocalObjectStore,
    StoreError,
    lfs_store,
    pointer_text,
    resolve_pointer,
)
from designs.models import DesignLfsObject, LfsObject
from designs.selectors import design_blob_to_file, design_file
from hub.exceptions import ValidationError
from tests.conftest import client_for
from tests.factories import DesignFactory, commit_files

KB = 1024


def content_and_oid(size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


def files_under(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- the store ----------------------------------------------------------------------------


def test_the_store_keeps_an_object_under_its_oid(tmp_path):
    store = LocalObjectStore(tmp_path / "lfs")
    data, oid = content_and_oid(3 * KB)
    store.save(oid, len(data), io.BytesIO(data))
    assert store.path(oid) == tmp_path / "lfs" / oid[0:2] / oid[2:4] / oid
    assert store.exists(oid) and store.size(oid) == len(data)
    with store.open(oid) as stored:
        assert stored.read() == data
    assert files_under(tmp_path / "lfs" / "tmp") == []


@pytest.mark.parametrize(
    "body",
    [b"other bytes of the same size" + b"." * (3 * KB - 28), b"short", None],
    ids=["wrong-hash", "too-short", "too-long"],
)
def test_the_store_refuses_content_that_does_not_match_and_keeps_nothing(tmp_path, body):
    store = LocalObjectStore(tmp_path / "lfs")
    data, oid = content_and_oid(3 * KB)
    with pytest.raises(StoreError):
        store.save(oid, len(data), io.BytesIO(body if body is not None else data + b"more"))
    assert not store.exists(oid)
    assert files_under(tmp_path / "lfs") == []


def test_an_interrupted_upload_leaves_no_temporary_file(tmp_path):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() >= 2 * KB:
                raise ConnectionResetError("client went away")
            return super().read(min(size, KB))

    store = LocalObjectStore(tmp_path / "lfs")
    data, oid = content_and_oid(4 * KB)
    with pytest.raises(ConnectionResetError):
        store.save(oid, len(data), Broken(data))
    assert files_under(tmp_path / "lfs") == []


@pytest.mark.parametrize(
    "oid", ["A" * 64, "a" * 63, "../" + "a" * 61, "g" * 64, "a" * 64 + "\n", "", None], ids=repr
)
def test_the_store_refuses_a_bad_oid_before_touching_the_disk(tmp_path, oid):
    store = LocalObjectStore(tmp_path / "lfs")
    with pytest.raises(StoreError):
        store.save(oid, 1, io.BytesIO(b"x"))
    with pytest.raises(StoreError):
        store.open(oid)
    assert not (tmp_path / "lfs").exists()


def test_adding_a_stream_names_it_by_its_hash_and_respects_the_limit(tmp_path):
    store = LocalObjectStore(tmp_path / "lfs")
    data, oid = content_and_oid(5 * KB)
    assert store.add(io.BytesIO(data), max_size=5 * KB) == (oid, 5 * KB)
    assert store.size(oid) == 5 * KB
    with pytest.raises(StoreError):
        store.add(io.BytesIO(data + b"!"), max_size=5 * KB)
    assert files_under(tmp_path / "lfs") == [store.path(oid)]


def test_a_pointer_file_is_recognised_and_anything_else_is_content():
    oid = "a" * 64
    assert resolve_pointer(pointer_text(oid, 12345)) == (oid, 12345)
    with_extension = (
        b"version https://git-lfs.github.com/spec/v1\next-0-foo sha256:"
        + b"b" * 64
        + (b"\noid sha256:" + oid.encode() + b"\nsize 7\n")
    )
    assert resolve_pointer(with_extension) == (oid, 7)
    for other in (
        b"",
        b"solid cube\nendsolid cube\n",
        pointer_text(oid, 1)[:-1],  # no final newline
        pointer_text(oid, 1).replace(b"sha256:", b"sha1:"),
        pointer_text(oid, 1).replace(b"size 1", b"size -1"),
        pointer_text(oid, 1).replace(oid.encode(), oid.upper().encode()),
        pointer_text(oid, 1) + b"x" * 1024,
    ):
        assert resolve_pointer(other) is None, other


# -- web and API uploads ------------------------------------------------------------------


@pytest.fixture
def small_threshold(settings):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 4 * KB
    return settings.FABHUB_LFS_THRESHOLD_BYTES


def tree_file(design, path: str, rev: str = "main") -> bytes:
    entry = design.repo.entry(design.repo.resolve(rev), path)
    return design.repo.read_blob(entry.sha) if entry else b""


def check_attr(design, path: str) -> str:
    """What git itself says about `path`'s filter in a checkout of the default branch."""
    out = subprocess.run(
        ["git", "--git-dir", str(design.repo_path), "check-attr", "--source", "main", "filter", "--", path],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:  # git < 2.40 has no --source: read the file's patterns via an index
        env = {**os.environ, "GIT_INDEX_FILE": str(design.repo_path / "check-index")}
        subprocess.run(["git", "--git-dir", str(design.repo_path), "read-tree", "main"], env=env, check=True)
        out = subprocess.run(
            ["git", "--git-dir", str(design.repo_path), "check-attr", "--cached", "filter", "--", path],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return out.stdout.rsplit(": ", 1)[-1].strip()


@pytest.mark.django_db
def test_an_upload_over_the_threshold_is_committed_as_a_pointer_with_gitattributes(alice, small_threshold):
    design = DesignFactory(owner=alice)
    data, oid = content_and_oid(small_threshold + 1)
    sha = commit_files(design, {"cad/body.step": data, "notes.txt": "small stays a blob\n"}, "Body")

    assert tree_file(design, "cad/body.step") == pointer_text(oid, len(data))
    assert tree_file(design, "notes.txt") == b"small stays a blob\n"
    assert tree_file(design, ".gitattributes") == b"/cad/body.step filter=lfs diff=lfs merge=lfs -text\n"
    assert check_attr(design, "cad/body.step") == "lfs"
    assert design.repo.commit(sha).parents == []  # one single commit holds it all
    assert lfs_store().size(oid) == len(data)
    assert DesignLfsObject.objects.filter(design=design, lfs_object__oid=oid).exists()


@pytest.mark.django_db
def test_a_small_upload_stays_a_plain_blob_and_adds_no_gitattributes(alice, small_threshold):
    design = DesignFactory(owner=alice)
    commit_files(design, {"part.stl": os.urandom(small_threshold)})
    assert resolve_pointer(tree_file(design, "part.stl")) is None
    assert tree_file(design, ".gitattributes") == b""
    assert not LfsObject.objects.exists()


@pytest.mark.django_db
def test_an_existing_pattern_is_reused_and_the_file_keeps_its_other_lines(alice, small_threshold):
    design = DesignFactory(owner=alice)
    attributes = "*.scad text eol=lf\n*.step filter=lfs diff=lfs merge=lfs -text\n"
    commit_files(design, {".gitattributes": attributes})
    data, oid = content_and_oid(small_threshold * 2)
    commit_files(design, {"deep/er/gear.step": data, "big.bin": os.urandom(small_threshold * 2)})

    assert tree_file(design, ".gitattributes").decode() == (
        attributes + "/big.bin filter=lfs diff=lfs merge=lfs -text\n"
    )
    assert resolve_pointer(tree_file(design, "deep/er/gear.step")) == (oid, len(data))


@pytest.mark.django_db
def test_a_small_upload_to_a_path_tracked_with_lfs_becomes_an_lfs_file(alice, small_threshold):
    """As `git lfs track` users expect: the pattern decides, whatever the size."""
    design = DesignFactory(owner=alice)
    commit_files(design, {".gitattributes": "*.step filter=lfs diff=lfs merge=lfs -text\n"})
    data, oid = content_and_oid(100)
    commit_files(design, {"tiny.step": data})
    assert resolve_pointer(tree_file(design, "tiny.step")) == (oid, 100)
    assert lfs_store().exists(oid)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["my parts/arm 2.step", "x*[1]?.stl", "ünïcode/naïve.3mf", 'quote"d.stl'])
def test_patterns_for_unusual_names_match_exactly_that_file(alice, small_threshold, path):
    design = DesignFactory(owner=alice)
    commit_files(design, {path: os.urandom(small_threshold + 1)})
    assert check_attr(design, path) == "lfs"
    for neighbour in ("x1.stl", "other/" + path.rsplit("/", 1)[-1]):
        if neighbour != path:
            assert check_attr(design, neighbour) != "lfs"


@pytest.mark.django_db
def test_gitattributes_uploaded_in_the_same_commit_gets_the_line_too(alice, small_threshold):
    design = DesignFactory(owner=alice)
    commit_files(design, {".gitattributes": "*.md text", "huge.bin": os.urandom(small_threshold + 1)})
    assert (
        tree_file(design, ".gitattributes") == b"*.md text\n/huge.bin filter=lfs diff=lfs merge=lfs -text\n"
    )


@pytest.mark.django_db
def test_a_folder_that_turns_lfs_off_refuses_the_big_upload(alice, small_threshold):
    design = DesignFactory(owner=alice)
    head = commit_files(design, {"raw/.gitattributes": "* -filter\n"})
    with pytest.raises(ValidationError, match="turns the LFS filter off"):
        commit_files(design, {"raw/scan.ply": os.urandom(small_threshold + 1)})
    assert design.repo.branch_head("main") == head


@pytest.mark.django_db
def test_the_raw_file_is_the_content_streamed_with_ranges(alice, client, small_threshold):
    design = DesignFactory(owner=alice)
    data, _ = content_and_oid(small_threshold * 3)
    commit_files(design, {"cad/body.stl": data})
    url = reverse("design-raw", args=[alice.username, design.slug, "cad/body.stl"])

    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert b"".join(response.streaming_content) == data
    entry = design.repo.entry(design.repo.branch_head("main"), "cad/body.stl")
    assert response["ETag"] == f'"{entry.sha}"'

    partial = client.get(url, HTTP_RANGE="bytes=100-199")
    assert partial.status_code == 206
    assert partial["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert b"".join(partial.streaming_content) == data[100:200]
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


@pytest.mark.django_db
def test_the_api_upload_and_raw_endpoint_use_lfs_too(alice, small_threshold):
    design = DesignFactory(owner=alice)
    commit_files(design, {"README.md": "# Rover"})
    api = client_for(alice)
    data, oid = content_and_oid(small_threshold * 2)
    posted = api.post(
        reverse("api-design-upload", args=[alice.username, design.slug]),
        {"files": [SimpleUploadedFile("scan.ply", data)], "message": "Scan"},
        format="multipart",
    )
    assert posted.status_code == 201, posted.content
    assert resolve_pointer(tree_file(design, "scan.ply")) == (oid, len(data))

    raw = api.get(reverse("api-design-raw", args=[alice.username, design.slug]), {"path": "scan.ply"})
    assert b"".join(raw.streaming_content) == data


@pytest.mark.django_db
def test_a_pointer_to_an_object_of_another_design_is_served_as_the_pointer(
    alice, bob, client, small_threshold
):
    """Knowing an oid (it is in every pointer) must not open someone else's private file."""
    private = DesignFactory(owner=alice, visibility="private")
    data, oid = content_and_oid(small_threshold + 1)
    commit_files(private, {"secret.step": data})
    thief = DesignFactory(owner=bob)
    commit_files(thief, {"loot.txt": pointer_text(oid, len(data))})

    response = client.get(reverse("design-raw", args=[bob.username, thief.slug, "loot.txt"]))
    assert b"".join(response.streaming_content) == pointer_text(oid, len(data))


@pytest.mark.django_db
def test_a_fork_serves_the_objects_without_a_copy(alice, bob, client, small_threshold):
    design = DesignFactory(owner=alice)
    data, oid = content_and_oid(small_threshold + 1)
    commit_files(design, {"frame.step": data})
    before = files_under(lfs_store().root)

    fork = services.design_fork(design=design, user=bob)

    assert DesignLfsObject.objects.filter(design=fork, lfs_object__oid=oid).exists()
    assert files_under(lfs_store().root) == before
    response = client.get(reverse("design-raw", args=[bob.username, fork.slug, "frame.step"]))
    assert b"".join(response.streaming_content) == data
    # The fork keeps its files when the upstream goes.
    services.design_delete(design=design)
    response = client.get(reverse("design-raw", args=[bob.username, fork.slug, "frame.step"]))
    assert b"".join(response.streaming_content) == data


@pytest.mark.django_db
def test_a_blob_is_read_as_its_lfs_object_only_where_the_design_serves_it(
    alice, bob, small_threshold, tmp_path
):
    design = DesignFactory(owner=alice)
    data, oid = content_and_oid(small_threshold + 1)
    pointer = pointer_text(oid, len(data))
    # A pointer whose size lies is a small plain file, as is every file of Bob's design.
    commit_files(design, {"mesh.stl": data, "wrong-size.stl": pointer_text(oid, len(data) + 1)})
    other = DesignFactory(owner=bob)
    commit_files(other, {"stolen.stl": pointer, "plain.stl": b"solid mesh\n"})

    def read(of, path):
        _, entry = design_file(of, rev=None, path=path)
        target = tmp_path / f"{of.pk}-{path}"
        design_blob_to_file(of, blob_sha=entry.sha, target=target)
        return target.read_bytes()

    assert read(design, "mesh.stl") == data
    assert read(other, "stolen.stl") == pointer
    assert read(design, "wrong-size.stl") == pointer_text(oid, len(data) + 1)
    assert read(other, "plain.stl") == b"solid mesh\n"


def test_the_file_page_shows_the_size_of_the_lfs_object_not_of_its_pointer(alice, client, settings):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 1024
    design = DesignFactory(owner=alice, slug="big-part")
    # A file the hub does not analyse: its page states the size in bytes (a STEP file's
    # page shows its analysis instead).
    commit_files(design, {"firmware/image.bin": b"ISO-10303-21;" + b"x" * 5000})
    page = client.get(f"/{alice.username}/big-part/blob/firmware/image.bin")
    body = page.content.decode()
    assert "stored with Git LFS" in body
    assert "5013 bytes" in body
