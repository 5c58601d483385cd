"""Account archives as people use them (issue 15): asking for an export and downloading it
(owner only), importing another account's archive, the history it brings, and claiming
its signed records with a proof the source hub signs; pages and API alike."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hub import archives, records, uploads
from hub.models import AccountArchive, ArchiveImport, ImportedRecord
from machines.models import Booking, PrintRecord
from tests.api.querycounts import assert_queries_do_not_grow_with_rows, results
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.machines.factories import make_lab, make_machine

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hub_address(settings):
    settings.FABHUB_PUBLIC_URL = "http://hub-a.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {}
    settings.FABHUB_ARCHIVE_ONLINE_CHECKS = False


@pytest.fixture
def browser_of():
    def browser_of(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return browser_of


def issue_record(user, number: int = 1):
    return records.credential_issue(
        kind="make",
        source=f"tests.make:{number}",
        subject=user,
        name=f"Made bracket #{number}",
        description="Printed and assembled a bracket.",
        achievement_type="Achievement",
        details={"design": "alice/bracket"},
    )


def export(user, background_tasks_run) -> AccountArchive:
    archive = AccountArchive.objects.create(owner=user)
    assert archives.archive_build(archive_id=archive.pk)
    archive.refresh_from_db()
    return archive


def archive_bytes(archive: AccountArchive) -> bytes:
    return archives.archive_path(archive).read_bytes()


def changed(data: bytes, member: str) -> bytes:
    """The same archive with one byte of `member` flipped (its manifest left as it was)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            content = old.read(info.filename)
            if info.filename == member:
                content = content[:-2] + bytes([content[-2] ^ 1]) + content[-1:]
            new.writestr(info.filename, content)
    return out.getvalue()


def upload(client, data: bytes, name: str = "alice.zip"):
    return client.post(reverse("archive-import-upload"), {"archive": SimpleUploadedFile(name, data)})


@pytest.fixture
def alice_archive(alice, background_tasks_run):
    issue_record(alice)
    return export(alice, background_tasks_run)


@pytest.fixture
def bob_import(bob, alice_archive, browser_of, background_tasks_run) -> ArchiveImport:
    """Bob imports Alice's archive (both on this hub): Bob is Alice's account elsewhere."""
    response = upload(browser_of(bob), archive_bytes(alice_archive))
    assert response.status_code == 302
    return ArchiveImport.objects.get(account=bob)


# -- exports ------------------------------------------------------------------------------


def test_a_person_asks_for_an_archive_on_the_page_and_downloads_it(alice, browser_of, background_tasks_run):
    client = browser_of(alice)
    response = client.post(reverse("archive-request"))
    assert response.status_code == 302
    archive = AccountArchive.objects.get(owner=alice)
    assert archive.status == "ready" and archive.progress == 100 and len(archive.sha256) == 64

    page = client.get(reverse("account-settings")).content.decode()
    assert "Your archive" in page and archive.sha256[:8] in page and "data-reload-after" not in page
    download = client.get(reverse("archive-download", args=[archive.pk]))
    assert download.status_code == 200
    day = archive.finished_at.date().isoformat()
    assert download["Content-Disposition"] == f'attachment; filename="fabhub-alice-{day}.zip"'
    with zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))) as zipped:
        manifest = json.loads(zipped.read("manifest.json"))
    assert manifest["account"]["username"] == "alice"
    assert "machines" in manifest["parts"]


def test_someone_else_s_archive_is_not_found_even_for_staff(alice, bob, alice_archive, browser_of):
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    for user in (bob, staff):
        assert browser_of(user).get(reverse("archive-download", args=[alice_archive.pk])).status_code == 404
        api = client_for(user)
        assert api.get(reverse("api-archive", args=[alice_archive.pk])).status_code == 404
        assert api.get(reverse("api-archive-download", args=[alice_archive.pk])).status_code == 404


def test_an_anonymous_download_is_sent_to_log_in_and_the_api_answers_401(alice_archive, api):
    response = Client().get(reverse("archive-download", args=[alice_archive.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert api.get(reverse("api-archive-download", args=[alice_archive.pk])).status_code == 401
    assert api.post(reverse("api-archives")).status_code == 401


def test_the_api_builds_an_archive_and_serves_it(alice, background_tasks_run):
    api = client_for(alice)
    created = api.post(reverse("api-archives"))
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "ready" and body["download_url"].endswith(
        f"/api/me/archives/{body['id']}/download/"
    )
    assert [a["id"] for a in results(api.get(reverse("api-archives")))] == [body["id"]]
    download = api.get(reverse("api-archive-download", args=[body["id"]]))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert zipfile.is_zipfile(io.BytesIO(b"".join(download.streaming_content)))


def test_one_archive_at_a_time_is_built_per_person(alice, browser_of):
    AccountArchive.objects.create(owner=alice, status="building", progress=40, stage="Designs")
    response = client_for(alice).post(reverse("api-archives"))
    assert response.status_code == 409
    assert "already being built" in response.json()["detail"]
    page = browser_of(alice).post(reverse("archive-request"), follow=True).content.decode()
    assert "already being built" in page
    assert AccountArchive.objects.filter(owner=alice).count() == 1


def test_the_page_follows_an_archive_being_built_and_the_api_refuses_its_download(alice, browser_of):
    archive = AccountArchive.objects.create(owner=alice, status="building", progress=40, stage="Designs")
    page = browser_of(alice).get(reverse("account-settings")).content.decode()
    assert 'data-reload-after="3"' in page
    assert '<progress max="100" value="40">' in page and "Designs" in page
    response = client_for(alice).get(reverse("api-archive-download", args=[archive.pk]))
    assert response.status_code == 409 and "not ready" in response.json()["detail"]
    assert client_for(alice).get(reverse("api-archive", args=[archive.pk])).json()["progress"] == 40


def test_an_expired_archive_is_deleted_file_and_row(alice_archive):
    path = archives.archive_path(alice_archive)
    assert path.exists()
    AccountArchive.objects.filter(pk=alice_archive.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert archives.archives_expire() == 1
    assert not path.exists() and not AccountArchive.objects.filter(pk=alice_archive.pk).exists()


def test_an_archive_past_its_time_is_not_served_before_the_ticker_deletes_it(alice, alice_archive):
    AccountArchive.objects.filter(pk=alice_archive.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client_for(alice).get(reverse("api-archive-download", args=[alice_archive.pk]))
    assert response.status_code == 404 and "expired" in response.json()["detail"]


# -- imports ------------------------------------------------------------------------------


def test_an_archive_of_another_account_is_imported_with_its_records_unclaimed(
    alice, bob, bob_import, browser_of
):
    assert bob_import.status == "done", bob_import.error
    assert bob_import.signature == "verified"
    assert bob_import.source_account == records.account_url("alice")
    assert bob_import.report["counts"]["records"] == 1
    client = browser_of(bob)
    page = client.get(reverse("archive-import", args=[bob_import.pk])).content.decode()
    assert "signature verified" in page and "1 records" in page and "Claim these records" in page
    history = client.get(reverse("imported-history")).content.decode()
    assert "Made bracket #1" in history
    assert f"issued by {records.hub_root()} to {records.account_url('alice')}" in history
    assert "claimed</span>" not in history
    # Unclaimed records are the account owner's to see, on their settings pages only.
    assert "Brought from other hubs" not in Client().get(reverse("profile", args=["bob"])).content.decode()
    assert browser_of(alice).get(reverse("archive-import", args=[bob_import.pk])).status_code == 404


def test_the_import_api_takes_an_upload_and_reports_it(bob, alice_archive, background_tasks_run):
    api = client_for(bob)
    response = api.post(
        reverse("api-imports"),
        {"file": SimpleUploadedFile("a.zip", archive_bytes(alice_archive))},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "done" and body["signature"] == "verified"
    assert body["report"] == {"counts": {"records": 1}, "notes": []}
    assert api.get(reverse("api-import", args=[body["id"]])).json()["source_account"] == records.account_url(
        "alice"
    )
    assert [job["id"] for job in results(api.get(reverse("api-imports")))] == [body["id"]]


def test_a_changed_byte_refuses_the_archive_and_the_page_names_the_file(
    bob, alice_archive, browser_of, background_tasks_run
):
    client = browser_of(bob)
    response = upload(client, changed(archive_bytes(alice_archive), "account.json"))
    job = ArchiveImport.objects.get(account=bob)
    assert job.status == "failed"
    page = client.get(response["Location"]).content.decode()
    assert "The archive was refused" in page
    assert "account.json does not match the SHA-256 in the manifest" in page
    assert not ImportedRecord.objects.filter(account=bob).exists()


def test_an_archive_over_the_limit_is_refused_with_a_message(bob, alice_archive, settings):
    settings.FABHUB_MAX_ARCHIVE_BYTES = 100
    data = archive_bytes(alice_archive)
    response = client_for(bob).post(
        reverse("api-imports"), {"file": SimpleUploadedFile("a.zip", data)}, format="multipart"
    )
    assert response.status_code == 413 and response.json()["limit"] == 100
    assert "larger than the limit of 100 bytes" in response.json()["detail"]
    assert not ArchiveImport.objects.exists()


def test_the_page_says_why_an_archive_over_the_limit_was_refused(bob, alice_archive, browser_of, settings):
    settings.FABHUB_MAX_ARCHIVE_BYTES = 100
    client = browser_of(bob)
    page = client.post(
        reverse("archive-import-upload"),
        {"archive": SimpleUploadedFile("alice.zip", archive_bytes(alice_archive))},
        follow=True,
    ).content.decode()
    assert "alice.zip is larger than the limit of 100 bytes" in page


def test_an_archive_may_be_larger_than_other_uploads(bob, alice_archive, settings, background_tasks_run):
    settings.FABHUB_MAX_UPLOAD_BYTES = 100
    settings.FABHUB_MAX_REQUEST_BYTES = 100
    data = archive_bytes(alice_archive)
    assert len(data) > 1000
    response = client_for(bob).post(
        reverse("api-imports"), {"file": SimpleUploadedFile("a.zip", data)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    # Anywhere else, the general limit holds.
    assert client_for(bob).post(reverse("api-tokens"), {"name": "x" * 200}).status_code == 413


def test_the_addresses_that_take_archives_are_the_import_page_and_endpoint():
    assert uploads.ARCHIVE_UPLOAD_PATHS == {reverse("archive-import-upload"), reverse("api-imports")}


def test_one_import_at_a_time_per_person(bob, alice_archive):
    ArchiveImport.objects.create(account=bob, status="importing")
    response = client_for(bob).post(
        reverse("api-imports"),
        {"file": SimpleUploadedFile("a.zip", archive_bytes(alice_archive))},
        format="multipart",
    )
    assert response.status_code == 409


# -- claiming the records -------------------------------------------------------------------


def test_records_are_claimed_with_a_proof_signed_on_the_source_hub(alice, bob, bob_import, browser_of):
    bob_page = browser_of(bob)
    url = reverse("archive-import", args=[bob_import.pk])
    page = bob_page.post(url, {"action": "challenge"}, follow=True).content.decode()
    bob_import.refresh_from_db()
    assert bob_import.claim_challenge
    authorise = bob_import.source_hub + "credentials/authorise/"
    assert f'href="{authorise}?challenge=' in page
    link = page.split(f'href="{authorise}', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    query = {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}
    assert query == {"challenge": bob_import.claim_challenge, "audience": records.account_url("bob")}

    # On the source hub (this same hub), Alice authorises Bob's account.
    alice_page = browser_of(alice)
    asked = alice_page.get(reverse("credentials-authorise"), query).content.decode()
    assert f'Authorise <strong id="audience">{records.account_url("bob")}</strong>' in asked
    signed = alice_page.post(reverse("credentials-authorise"), query)
    assert signed.status_code == 200  # shown to copy: never a redirect to the other hub
    proof_text = signed.content.decode().split("data-select-on-focus>", 1)[1].split("</textarea>", 1)[0]
    proof_text = proof_text.replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&")
    assert json.loads(proof_text)["credentialSubject"]["authorises"] == records.account_url("bob")

    done = bob_page.post(url, {"action": "claim", "proof": proof_text}, follow=True).content.decode()
    assert "1 record claimed" in done
    assert ImportedRecord.objects.get(account=bob).claimed_at is not None
    profile = Client().get(reverse("profile", args=["bob"])).content.decode()
    assert "Brought from other hubs" in profile and "Made bracket #1" in profile


def test_records_are_claimed_through_the_api(alice, bob, bob_import):
    bob_api = client_for(bob)
    challenge = bob_api.post(reverse("api-import-challenge", args=[bob_import.pk]))
    assert challenge.status_code == 201, challenge.content
    body = challenge.json()
    assert body["authorise_url"].startswith("http://hub-a.test:8000/credentials/authorise/?challenge=")
    proof = client_for(alice).post(
        reverse("api-records-authorise"),
        {"challenge": body["challenge"], "audience": records.account_url("bob")},
        format="json",
    )
    assert proof.status_code == 201, proof.content
    claimed = bob_api.post(
        reverse("api-import-claim", args=[bob_import.pk]), {"proof": proof.json()}, format="json"
    )
    assert claimed.status_code == 200 and claimed.json() == {"claimed": 1}


@pytest.mark.parametrize(
    ("signer", "challenge", "audience", "message"),
    [
        ("carol", None, "bob", "The proof is for another account than the archive's."),
        ("alice", "another-challenge-0123456789", "bob", "The proof answers another challenge."),
        ("alice", None, "carol", "The proof authorises another account than yours."),
    ],
)
def test_a_proof_that_does_not_fit_claims_nothing(
    alice, bob, bob_import, signer, challenge, audience, message
):
    bob_api = client_for(bob)
    given = bob_api.post(reverse("api-import-challenge", args=[bob_import.pk])).json()["challenge"]
    proof = archives.account_control_proof(
        user=UserFactory(username=signer),
        challenge=challenge or given,
        audience=records.account_url(audience),
    )
    response = bob_api.post(
        reverse("api-import-claim", args=[bob_import.pk]), {"proof": proof}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == message
    assert not ImportedRecord.objects.filter(claimed_at__isnull=False).exists()


def test_a_proof_after_the_challenge_expired_claims_nothing(alice, bob, bob_import, browser_of):
    client = browser_of(bob)
    url = reverse("archive-import", args=[bob_import.pk])
    client.post(url, {"action": "challenge"})
    bob_import.refresh_from_db()
    proof = archives.account_control_proof(
        user=alice, challenge=bob_import.claim_challenge, audience=records.account_url("bob")
    )
    ArchiveImport.objects.filter(pk=bob_import.pk).update(
        claim_challenge_at=timezone.now() - archives.CLAIM_LIFETIME - timedelta(seconds=1)
    )
    page = client.post(url, {"action": "claim", "proof": json.dumps(proof)}).content.decode()
    assert "The challenge has expired; ask for a new one." in page
    assert not ImportedRecord.objects.filter(claimed_at__isnull=False).exists()


def test_a_pasted_proof_that_is_not_json_is_refused_on_the_form(bob, bob_import, browser_of):
    client = browser_of(bob)
    url = reverse("archive-import", args=[bob_import.pk])
    client.post(url, {"action": "challenge"})
    page = client.post(url, {"action": "claim", "proof": "{not json"}).content.decode()
    assert "The proof is not JSON." in page


def test_the_authorise_page_needs_a_sign_in_and_refuses_an_address_that_is_no_web_page(alice, browser_of):
    query = {"challenge": "c" * 32, "audience": "javascript:alert(1)//"}
    anonymous = Client().get(reverse("credentials-authorise"), query)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    refused = browser_of(alice).get(reverse("credentials-authorise"), query)
    assert refused.status_code == 400
    assert "javascript:" not in refused.content.decode()


# -- the machines part ------------------------------------------------------------------------


def test_bookings_and_prints_travel_as_read_only_history(alice, bob, browser_of, background_tasks_run):
    lab = make_lab(alice)
    printer = make_machine(lab, slug="prusa", kind="fdm_printer", name="Prusa MK4")
    start = datetime(2026, 3, 23, 9, tzinfo=UTC)
    Booking.objects.create(
        machine=printer, member=alice, start=start, end=start + timedelta(hours=2), note="Brackets"
    )
    PrintRecord.objects.create(
        lab=lab,
        machine=printer,
        machine_name="Prusa MK4",
        owner=alice,
        owner_name="alice",
        design_name="alice/bracket",
        path="bracket.stl",
        commit_sha="a" * 40,
        gcode_sha="b" * 64,
        started_at=start,
        ended_at=start + timedelta(hours=1),
        result="done",
    )
    archive = export(alice, background_tasks_run)
    with zipfile.ZipFile(archives.archive_path(archive)) as zipped:
        [booking] = json.loads(zipped.read("machines/bookings.json"))
        [printed] = json.loads(zipped.read("machines/prints.json"))
        memberships = json.loads(zipped.read("machines/memberships.json"))
    assert booking["lab"] == "Fablab" and booking["machine"] == "Prusa MK4" and booking["note"] == "Brackets"
    assert booking["lab_url"] == "http://hub-a.test:8000/labs/fablab/"
    assert printed["gcode_sha256"] == "b" * 64 and printed["commit"] == "a" * 40
    assert memberships[0]["role"] == "manager"

    upload(browser_of(bob), archive_bytes(archive))
    job = ArchiveImport.objects.get(account=bob)
    assert job.report["counts"] == {"bookings": 1, "prints": 1}
    assert "1 lab membership of the other hub not carried over" in job.report["notes"][0]
    history = browser_of(bob).get(reverse("imported-history")).content.decode()
    assert "Prusa MK4 at Fablab" in history and "alice/bracket bracket.stl on Prusa MK4 at Fablab" in history
    # A second import of the same archive keeps nothing twice.
    upload(browser_of(bob), archive_bytes(archive))
    assert ImportedRecord.objects.filter(account=bob).count() == 2


# -- list endpoints ---------------------------------------------------------------------------


def test_listing_archives_takes_the_same_queries_for_one_as_for_many(alice):
    def add(n):
        for _ in range(n):
            AccountArchive.objects.create(owner=alice, status="ready", progress=100)

    assert_queries_do_not_grow_with_rows(client_for(alice), reverse("api-archives"), add=add, listed=results)


def test_listing_imports_takes_the_same_queries_for_one_as_for_many(alice):
    def add(n):
        for _ in range(n):
            ArchiveImport.objects.create(account=alice, status="done", report={"counts": {"records": 1}})

    assert_queries_do_not_grow_with_rows(client_for(alice), reverse("api-imports"), add=add, listed=results)
