"""The account archive's container (hub/archives.py): written and signed, then read back
only when every member matches its signed manifest; every way it can be wrong refused,
naming what failed."""

from __future__ import annotations

import json
import zipfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub import archives, records, signing

pytestmark = pytest.mark.django_db


def no_fetch(url):
    raise AssertionError(f"fetched {url}")


@pytest.fixture(autouse=True)
def hub_address(settings):
    settings.FABHUB_PUBLIC_URL = "http://hub-a.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {}
    settings.FABHUB_ARCHIVE_ONLINE_CHECKS = False


def write(path, *, members=None, manifest=None):
    writer = archives.ArchiveWriter(path)
    for name, data in (members or {"account.json": b"{}", "designs/1/repo.bundle": b"bundle"}).items():
        writer.add_bytes(name, data)
    return writer.finish(
        manifest
        or {
            "format": archives.FORMAT,
            "version": archives.FORMAT_VERSION,
            "hub": "http://hub-a.test:8000/",
            "account": {"username": "ada", "url": "http://hub-a.test:8000/ada/"},
            "parts": ["account"],
        }
    )


def rewrite(source, target, *, change_member=None, manifest_change=None, extra=None):
    """Copy an archive member by member, changing what the test needs."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename == archives.MANIFEST and manifest_change:
                data = json.dumps(manifest_change(json.loads(data))).encode()
            elif change_member and info.filename == change_member:
                data = data[:-1] + bytes([data[-1] ^ 1])
            new.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            new.writestr(name, data)


def test_an_archive_reads_back_member_by_member(tmp_path):
    path = tmp_path / "a.zip"
    manifest = write(path)
    reader = archives.open_checked(path, fetch=no_fetch)
    assert reader.verified and reader.source_account == "http://hub-a.test:8000/ada/"
    assert reader.names() == ["account.json", "designs/1/repo.bundle"]
    assert reader.open("designs/1/repo.bundle").read() == b"bundle"
    assert {f["path"] for f in manifest["files"]} == {"account.json", "designs/1/repo.bundle"}


def test_one_changed_byte_of_a_member_refuses_the_archive_naming_the_member(tmp_path):
    write(tmp_path / "a.zip")
    rewrite(tmp_path / "a.zip", tmp_path / "b.zip", change_member="designs/1/repo.bundle")
    with pytest.raises(archives.ArchiveRefused, match="designs/1/repo.bundle does not match the SHA-256"):
        archives.open_checked(tmp_path / "b.zip", fetch=no_fetch)


def test_one_changed_field_of_the_manifest_breaks_its_signature(tmp_path):
    write(tmp_path / "a.zip")

    def change(manifest):
        manifest["account"]["username"] = "mallory"
        return manifest

    rewrite(tmp_path / "a.zip", tmp_path / "b.zip", manifest_change=change)
    with pytest.raises(archives.ArchiveRefused, match="signature does not hold"):
        archives.open_checked(tmp_path / "b.zip", fetch=no_fetch)


def test_a_member_the_manifest_does_not_list_is_refused(tmp_path):
    write(tmp_path / "a.zip")
    rewrite(tmp_path / "a.zip", tmp_path / "b.zip", extra={"designs/1/extra.bundle": b"smuggled"})
    with pytest.raises(
        archives.ArchiveRefused, match="designs/1/extra.bundle is in the archive but not in its manifest"
    ):
        archives.open_checked(tmp_path / "b.zip", fetch=no_fetch)


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/../../b", "a\\b", "C:/x", "a//b", "./a"])
def test_a_member_that_would_extract_elsewhere_is_refused(tmp_path, name):
    write(tmp_path / "a.zip")
    rewrite(tmp_path / "a.zip", tmp_path / "b.zip", extra={name: b"x"})
    with pytest.raises(archives.ArchiveRefused, match="not a plain file path"):
        archives.open_checked(tmp_path / "b.zip", fetch=no_fetch)


def test_an_unsigned_manifest_is_refused(tmp_path):
    write(tmp_path / "a.zip")

    def strip(manifest):
        manifest.pop("proof")
        return manifest

    rewrite(tmp_path / "a.zip", tmp_path / "b.zip", manifest_change=strip)
    with pytest.raises(archives.ArchiveRefused, match="not signed"):
        archives.open_checked(tmp_path / "b.zip", fetch=no_fetch)


def test_an_archive_signed_by_a_key_its_hub_does_not_hold_is_refused(tmp_path):
    write(tmp_path / "a.zip")
    forger = Ed25519PrivateKey.generate()

    def forge(manifest):
        manifest["account"]["username"] = "mallory"
        proof = {**manifest.pop("proof")}
        proof.pop("proofValue")
        proof["verificationMethod"] = "http://hub-a.test:8000/#" + signing.public_key_name(
            forger.public_key()
        )
        proof["proofValue"] = "z" + signing.base58btc_encode(
            forger.sign(signing.signing_input(manifest, proof))
        )
        return {**manifest, "proof": proof}

    rewrite(tmp_path / "a.zip", tmp_path / "b.zip", manifest_change=forge)
    # Checked on hub A itself, which knows its own keys: the forger's is none of them.
    with pytest.raises(
        archives.ArchiveRefused, match="is not a key http://hub-a.test:8000/ is known to hold"
    ):
        archives.open_checked(tmp_path / "b.zip", fetch=no_fetch)


def test_an_archive_from_a_hub_this_one_cannot_check_is_read_unverified(tmp_path, settings):
    write(tmp_path / "a.zip")
    settings.FABHUB_PUBLIC_URL = "http://hub-b.test:8000"
    reader = archives.open_checked(tmp_path / "a.zip", fetch=no_fetch)
    assert reader.signature == "unverified"


def test_an_archive_from_a_trusted_hub_is_verified_on_another(tmp_path, settings):
    manifest = write(tmp_path / "a.zip")
    key = manifest["proof"]["verificationMethod"].split("#")[1]
    settings.FABHUB_PUBLIC_URL = "http://hub-b.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {"http://hub-a.test:8000/": [key]}
    assert archives.open_checked(tmp_path / "a.zip", fetch=no_fetch).verified


def test_a_manifest_nested_too_deeply_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr(archives.MANIFEST, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(archives.ArchiveRefused, match="nests deeper"):
        archives.open_checked(tmp_path / "a.zip", fetch=no_fetch)


def test_an_archive_over_the_limit_is_refused_before_it_is_read(tmp_path, settings):
    write(tmp_path / "a.zip")
    settings.FABHUB_MAX_ARCHIVE_BYTES = 100
    with pytest.raises(archives.ArchiveRefused, match="imports archives of at most"):
        archives.open_checked(tmp_path / "a.zip", fetch=no_fetch)


def test_what_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"PK not really")
    with pytest.raises(archives.ArchiveRefused, match="not a ZIP"):
        archives.open_checked(tmp_path / "a.zip", fetch=no_fetch)


def test_a_proof_of_account_control_verifies_as_a_signed_document(alice):
    proof = archives.account_control_proof(user=alice, challenge="c" * 32, audience="http://hub-b.test/ada2/")
    report = records.credential_verify(proof, fetch=no_fetch)
    assert report.verified and proof["credentialSubject"]["authorises"] == "http://hub-b.test/ada2/"


def test_a_failed_build_is_kept_to_say_why_then_expires(alice, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from hub.models import AccountArchive

    def broken(context):
        raise OSError("disk full")

    monkeypatch.setattr(archives, "_parts", {"broken": archives.ArchivePart("broken", broken, broken)})
    archive = AccountArchive.objects.create(owner=alice)
    with pytest.raises(OSError):
        archives.archive_build(archive_id=archive.pk)
    archive.refresh_from_db()
    assert archive.status == "failed" and "disk full" in archive.error and archive.expires_at is not None
    assert not archives.archive_path(archive).exists()
    AccountArchive.objects.filter(pk=archive.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert archives.archives_expire() == 1


def test_an_import_that_fails_unexpectedly_is_marked_failed_not_left_running(
    alice, bob, tmp_path, monkeypatch
):
    from hub.models import ArchiveImport

    job = ArchiveImport.objects.create(account=bob)
    write(
        archives.import_path(job),
        manifest={
            "format": archives.FORMAT,
            "version": archives.FORMAT_VERSION,
            "hub": "http://hub-a.test:8000/",
            "account": {"username": "alice", "url": "http://hub-a.test:8000/alice/"},
            "parts": ["exploding"],
        },
    )

    def explode(context):
        raise KeyError("surprise")

    monkeypatch.setattr(
        archives, "_parts", {"exploding": archives.ArchivePart("exploding", explode, explode)}
    )
    assert archives.archive_import_run(import_id=job.pk, fetch=no_fetch) is False
    job.refresh_from_db()
    assert job.status == "failed" and "KeyError" in job.error
    assert not archives.import_path(job).exists()
