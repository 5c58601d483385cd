"""A ZIP of a design at any revision and of each release: every file, LFS files as their
real bytes, streamed with bounded memory; private designs stay private."""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile

import pytest
from django.urls import reverse

from designs import services
from designs.models import Design
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


def download(client, *args) -> zipfile.ZipFile:
    response = client.get(reverse("design-archive", args=args))
    assert response.status_code == 200, response
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_a_zip_holds_every_file_with_lfs_files_as_their_content(alice, client, settings):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 1024
    design = DesignFactory(owner=alice, slug="bracket")
    big = os.urandom(5000)
    first = commit_files(design, {"README.md": "# Bracket\n", "parts/body.stl": big})
    assert design.repo.read_blob(design.repo.entry(first, "parts/body.stl").sha).startswith(
        b"version https://git-lfs"
    )
    commit_files(design, {"README.md": "# Bracket v2\n"})

    archive = download(client, "alice", "bracket", "main")
    assert sorted(archive.namelist()) == [
        "bracket-main/.gitattributes",  # written by the hub when it stored body.stl in LFS
        "bracket-main/README.md",
        "bracket-main/parts/body.stl",
    ]
    assert archive.read("bracket-main/parts/body.stl") == big  # the object, not its pointer
    assert archive.read("bracket-main/README.md") == b"# Bracket v2\n"
    page = client.get(reverse("design-detail", args=["alice", "bracket"])).content.decode()
    assert reverse("design-archive", args=["alice", "bracket", "main"]) in page
    older = download(client, "alice", "bracket", first)
    assert older.read(f"bracket-{first[:10]}/README.md") == b"# Bracket\n"


def test_each_release_has_its_zip_linked_from_the_tags_page(alice, client):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# v1\n"})
    services.tag_create(design=design, user=alice, name="v1.0", target="main", notes="First")
    commit_files(design, {"README.md": "# v2\n"})
    page = client.get(reverse("design-tags", args=["alice", "bracket"])).content.decode()
    assert reverse("design-archive", args=["alice", "bracket", "v1.0"]) in page
    assert download(client, "alice", "bracket", "v1.0").read("bracket-v1.0/README.md") == b"# v1\n"


def test_a_private_design_s_zip_is_a_404_for_strangers(alice, bob, client):
    DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(Design.objects.get(slug="secret"), {"README.md": "# S\n"})
    client.force_login(bob)
    assert client.get(reverse("design-archive", args=["alice", "secret", "main"])).status_code == 404
    client.force_login(alice)
    assert download(client, "alice", "secret", "main").namelist() == ["secret-main/README.md"]


def test_a_large_design_streams_in_bounded_memory(alice, client, settings):
    settings.FABHUB_LFS_THRESHOLD_BYTES = 1024 * 1024
    design = DesignFactory(owner=alice, slug="car")
    commit_files(design, {f"modules/part-{n}.stl": os.urandom(20 * 1024 * 1024) for n in range(3)})
    response = client.get(reverse("design-archive", args=["alice", "car", "main"]))
    tracemalloc.start()
    try:
        total = 0
        for chunk in response.streaming_content:
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 60 * 1024 * 1024  # random bytes do not compress
    assert peak < 16 * 1024 * 1024, f"streaming took {peak / 1e6:.0f} MB"
