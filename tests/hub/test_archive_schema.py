"""docs/account-archive.schema.json describes the manifest.json that `archive_build` writes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from designs import services
from hub import archives
from hub.models import AccountArchive
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "account-archive.schema.json"


@pytest.fixture
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@pytest.fixture
def manifest(settings) -> dict:
    settings.FABHUB_PUBLIC_URL = "http://hub-a.test:8000"
    settings.FABHUB_LFS_THRESHOLD_BYTES = 1024
    ada = UserFactory(username="ada", first_name="Ada")
    car = DesignFactory(owner=ada, slug="car")
    commit_files(car, {"body.step": b"\x00" * 4096, "README.md": "# Car\n"}, "Body")
    services.tag_create(design=car, user=ada, name="v1", target=None, notes="First")
    archive = AccountArchive.objects.create(owner=ada)
    assert archives.archive_build(archive_id=archive.pk)
    with zipfile.ZipFile(archives.archive_path(archive)) as archive_file:
        return json.loads(archive_file.read(archives.MANIFEST))


def test_a_manifest_the_hub_writes_is_valid_against_the_schema(validator, manifest):
    assert sorted(error.message for error in validator.iter_errors(manifest)) == []
    paths = {entry["path"] for entry in manifest["files"]}
    assert {"account.json", "records/credentials.json"} <= paths
    assert any(path.endswith("/repo.bundle") for path in paths)
    assert any("/lfs/" in path for path in paths)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(version=2),
        lambda m: m.pop("proof"),
        lambda m: m["files"].append({"path": "../escape", "size": 1, "sha256": "0" * 64}),
        lambda m: m["files"].append({"path": "a//b", "size": 1, "sha256": "0" * 64}),
        lambda m: m["files"].append({"path": "manifest.json", "size": 1, "sha256": "0" * 64}),
        lambda m: m["files"][0].update(sha256="not a hash"),
        lambda m: m["files"][0].update(size=-1),
        lambda m: m["account"].pop("url"),
    ],
    ids=["version", "no-proof", "dot-dot", "empty-segment", "manifest-listed", "hash", "size", "account"],
)
def test_the_schema_rejects_a_manifest_the_hub_would_refuse(validator, manifest, change):
    change(manifest)
    assert not validator.is_valid(manifest)
