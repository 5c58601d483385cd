"""An archive from a hub this one cannot check (no trust-list entry, not did:web, or
offline): its designs are content and come in; its records stay unverified, and the
reputation in them cannot be claimed."""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from hub import archives
from hub.exceptions import ValidationError
from hub.models import AccountArchive, ArchiveImport, ImportedRecord
from machines import services as lab_services
from machines.models import Lab, Machine
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db


def no_fetch(url):
    raise AssertionError(f"fetched {url}")


@pytest.fixture
def archive_of_ada(settings, tmp_path):
    """Exported on hub A: one design and one signed qualification of ada's."""
    settings.FABHUB_PUBLIC_URL = "http://hub-a.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {}
    settings.FABHUB_ARCHIVE_ONLINE_CHECKS = False
    ada, grace = UserFactory(username="ada"), UserFactory(username="grace")
    commit_files(DesignFactory(owner=ada, slug="bracket"), {"README.md": "# Bracket\n"})
    lab = lab_services.lab_create(creator=grace, name="Lab A", slug="lab-a", timezone="Europe/Paris")
    Lab.objects.filter(pk=lab.pk).update(approved_at=lab.created_at)
    lab.refresh_from_db()
    lab_services.membership_join(lab=lab, user=ada)
    lab_services.qualification_record(
        lab=lab, actor=grace, member=ada, trained_on=date(2026, 1, 5), kind=Machine.Kind.LASER_CUTTER
    )
    archive = AccountArchive.objects.create(owner=ada)
    assert archives.archive_build(archive_id=archive.pk)
    kept = tmp_path / "ada.zip"
    shutil.copy(archives.archive_path(archive), kept)
    return kept


def test_designs_come_in_and_records_stay_unverified_when_the_hub_cannot_be_checked(archive_of_ada, settings):
    settings.FABHUB_PUBLIC_URL = "http://hub-b.test:8000"  # another hub, which trusts nobody
    bea = UserFactory(username="bea")
    job = ArchiveImport.objects.create(account=bea)
    shutil.copy(archive_of_ada, archives.import_path(job))
    assert archives.archive_import_run(import_id=job.pk, fetch=no_fetch)
    job.refresh_from_db()
    assert (job.status, job.signature) == ("done", "unverified")
    assert bea.designs.filter(slug="bracket").exists()
    record = ImportedRecord.objects.get(account=bea, kind=ImportedRecord.Kind.CREDENTIAL)
    assert record.verification == "unverified" and record.claimed_at is None
    archives.claim_challenge(archive_import=job)
    with pytest.raises(ValidationError, match="cannot be checked from here"):
        archives.records_claim(archive_import=job, proof={}, fetch=no_fetch)


def test_an_import_whose_outcome_met_the_database_gone_is_run_again_and_finishes(
    archive_of_ada, settings, monkeypatch
):
    """The task is retried on a database error (hub.celery.HubTask): the uploaded file is
    deleted only once the outcome is saved, so the retry has it to import from."""
    from django.db import OperationalError

    from hub.tasks import archive_import

    settings.FABHUB_PUBLIC_URL = "http://hub-b.test:8000"
    bea = UserFactory(username="bea")
    job = ArchiveImport.objects.create(account=bea)
    shutil.copy(archive_of_ada, archives.import_path(job))
    real_set = archives._set
    failed: list[str] = []

    def database_gone_at_the_outcome(model, pk, **fields):
        if fields.get("status") == ArchiveImport.Status.DONE and not failed:
            failed.append("done")
            raise OperationalError("the database system is starting up")
        real_set(model, pk, **fields)

    monkeypatch.setattr(archives, "_set", database_gone_at_the_outcome)
    assert archive_import.apply(args=(job.pk,)).result is True
    assert failed == ["done"]
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert bea.designs.filter(slug="bracket").count() == 1
    assert not archives.import_path(job).exists()


def test_an_import_run_again_without_its_file_is_failed_not_left_importing(settings):
    bea = UserFactory(username="bea")
    job = ArchiveImport.objects.create(account=bea, status=ArchiveImport.Status.IMPORTING)
    assert not archives.import_path(job).exists()
    assert archives.archive_import_run(import_id=job.pk, fetch=no_fetch) is False
    job.refresh_from_db()
    assert job.status == "failed" and "upload it again" in job.error
