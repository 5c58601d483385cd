"""Files attached to releases leave with a design in its owner's account archive and come
back attached to the same releases, each checked as an upload is."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from designs import services
from designs.lfs_store import lfs_store
from designs.models import Design, ReleaseAsset
from designs.services import releases
from hub import archives, records
from hub.models import AccountArchive, ArchiveImport
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

PLATE = b"3MF plate bytes " * 100
GUIDE = b"Assembly guide\n"


@pytest.fixture(autouse=True)
def hub_settings(settings):
    settings.FABHUB_PUBLIC_URL = "http://hub-a.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {}
    settings.FABHUB_ARCHIVE_ONLINE_CHECKS = False


def no_fetch(url):
    raise AssertionError(f"fetched {url}")


def export(user) -> Path:
    archive = AccountArchive.objects.create(owner=user)
    assert archives.archive_build(archive_id=archive.pk)
    return archives.archive_path(archive)


def import_into(account, path: Path) -> ArchiveImport:
    job = ArchiveImport.objects.create(account=account)
    shutil.copy(path, archives.import_path(job))
    archives.archive_import_run(import_id=job.pk, fetch=no_fetch)
    job.refresh_from_db()
    return job


def attach(design, user, tag: str, name: str, content: bytes) -> None:
    with SimpleUploadedFile(name, content) as upload:
        releases.release_asset_upload(
            design=design,
            user=user,
            tag=tag,
            name=name,
            content=upload,
            content_type="application/x",
            size=len(content),
        )


@pytest.fixture
def ada_car(db):
    ada = UserFactory(username="ada")
    car = DesignFactory(owner=ada, slug="car", title="Car")
    commit_files(car, {"README.md": "# Car\n"})
    services.tag_create(design=car, user=ada, name="v0.1", target=None, notes="First")
    attach(car, ada, "v0.1", "plate.3mf", PLATE)
    attach(car, ada, "v0.1", "guide.txt", GUIDE)
    return ada, car


def test_release_files_travel_in_the_archive_and_come_back_attached(ada_car, tmp_path):
    ada, _ = ada_car
    path = export(ada)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        folder = next(n.rsplit("/", 1)[0] for n in names if n.endswith("/releases.json"))
        listed = json.loads(archive.read(f"{folder}/releases.json"))
        assert [f["name"] for f in listed[0]["files"]] == ["guide.txt", "plate.3mf"]
        assert archive.read(f"{folder}/release-files/{hashlib.sha256(PLATE).hexdigest()}") == PLATE

    bea = UserFactory(username="bea")
    job = import_into(bea, path)
    assert job.status == ArchiveImport.Status.DONE, job.report
    car = Design.objects.get(owner=bea, slug="car")
    rows = list(ReleaseAsset.objects.filter(design=car).order_by("name"))
    assert [(r.tag, r.name, r.size) for r in rows] == [
        ("v0.1", "guide.txt", len(GUIDE)),
        ("v0.1", "plate.3mf", len(PLATE)),
    ]
    with lfs_store().open(rows[1].sha256) as stored:
        assert stored.read() == PLATE


def test_a_release_file_with_a_bad_name_or_wrong_bytes_is_left_out_with_a_note(ada_car, tmp_path):
    ada, _ = ada_car
    # The design's part of a real export, changed, in an archive this hub signs again
    # (a changed file in a signed archive refuses the whole archive before any check here).
    writer = archives.ArchiveWriter(tmp_path / "hostile.zip")
    with zipfile.ZipFile(export(ada)) as source:
        for name in source.namelist():
            if not name.startswith("designs/") or name.count("/") < 2:
                continue
            data = source.read(name)
            if name.endswith("/releases.json"):
                listed = json.loads(data)
                listed[0]["files"][0]["name"] = "../../escape.txt"
                data = json.dumps(listed).encode()
            elif "/release-files/" in name and data == PLATE:
                data = b"X" + PLATE[1:]  # the same size, other bytes
            writer.add_bytes(name, data)
    writer.finish(
        {
            "format": archives.FORMAT,
            "version": archives.FORMAT_VERSION,
            "hub": records.hub_root(),
            "account": {"username": "ada", "url": records.account_url("ada")},
            "parts": ["account", "designs"],
        }
    )
    bea = UserFactory(username="bea")
    job = import_into(bea, tmp_path / "hostile.zip")
    assert job.status == ArchiveImport.Status.DONE, job.error
    car = Design.objects.get(owner=bea, slug="car")
    assert not ReleaseAsset.objects.filter(design=car).exists()
    notes = "\n".join(job.report["notes"])
    assert notes.count("a release file was not imported") == 2, notes
    assert "cannot contain '/'" in notes and "does not match" in notes


def test_an_imported_release_file_is_typed_by_its_name_not_by_the_archive(ada_car, tmp_path):
    ada, _ = ada_car
    writer = archives.ArchiveWriter(tmp_path / "hostile.zip")
    with zipfile.ZipFile(export(ada)) as source:
        for name in source.namelist():
            if not name.startswith("designs/") or name.count("/") < 2:
                continue
            data = source.read(name)
            if name.endswith("/releases.json"):
                listed = json.loads(data)
                for item in listed[0]["files"]:
                    item["content_type"] = "text/html"
                data = json.dumps(listed).encode()
            writer.add_bytes(name, data)
    writer.finish(
        {
            "format": archives.FORMAT,
            "version": archives.FORMAT_VERSION,
            "hub": records.hub_root(),
            "account": {"username": "ada", "url": records.account_url("ada")},
            "parts": ["account", "designs"],
        }
    )
    bea = UserFactory(username="bea")
    job = import_into(bea, tmp_path / "hostile.zip")
    assert job.status == ArchiveImport.Status.DONE, job.error
    rows = ReleaseAsset.objects.filter(design__owner=bea).order_by("name")
    assert [(r.name, r.content_type) for r in rows] == [
        ("guide.txt", "text/plain"),
        ("plate.3mf", "model/3mf"),
    ]
