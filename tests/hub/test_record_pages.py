"""Signed records as the hub serves and checks them: its keys, its revocation lists, each
record (as private as what it is about), the verify API and command; and the records the
lab side issues — a qualification granted and withdrawn, a print that finished."""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hub import records
from hub.exceptions import PermissionDenied
from hub.models import Credential
from machines import services
from machines.models import Machine, PrintRecord
from machines.printing import dispatch
from machines.printing import services as printing
from machines.records import print_record_credential_issue, print_record_source, qualification_source
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory
from tests.machines.factories import add_member, make_lab
from tests.printing.factories import make_printer, queued_job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.FABHUB_PUBLIC_URL = "http://testserver"


@pytest.fixture
def lab(alice, bob):
    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    return lab


def qualify(lab, alice, bob, **fields):
    return services.qualification_record(
        lab=lab, actor=alice, member=bob, trained_on=date(2026, 1, 5), kind=Machine.Kind.FDM_PRINTER, **fields
    )


def test_granting_a_qualification_signs_a_record_naming_the_member_and_the_lab(lab, alice, bob):
    qualification = qualify(lab, alice, bob, expires_on=date(2027, 1, 4))
    credential = Credential.objects.get(source=qualification_source(qualification))
    subject = credential.document["credentialSubject"]
    assert subject["id"] == "http://testserver/bob/"
    assert subject["qualification"]["lab"] == lab.name
    assert subject["qualification"]["expiresOn"] == "2027-01-04"
    assert credential.document["validUntil"].startswith("2027-01-04T")
    assert records.credential_verify(credential.document).verified


def test_withdrawing_a_qualification_revokes_its_record(lab, alice, bob, client):
    qualification = qualify(lab, alice, bob)
    source = qualification_source(qualification)
    services.qualification_revoke(qualification=qualification, actor=alice)
    credential = Credential.objects.get(source=source)
    assert credential.is_revoked and lab.name in credential.revocation_reason
    assert records.credential_verify(credential.document, online=True).status == "revoked"
    listing = client.get(reverse("credential-status-list", args=[0])).json()
    bits = records.decode_status_bits(listing["credentialSubject"]["encodedList"])
    assert bits[credential.status_index // 8] & (0x80 >> (credential.status_index % 8))


def test_a_withdrawal_that_fails_revokes_nothing(lab, alice, bob):
    qualification = qualify(lab, alice, bob)
    with pytest.raises(PermissionDenied):
        services.qualification_revoke(qualification=qualification, actor=bob)
    assert not Credential.objects.get(source=qualification_source(qualification)).is_revoked


def print_by_hand(lab, alice, bob, tmp_path, capture, *, outcome: str, slug: str) -> PrintRecord:
    make_printer(lab, slug=slug)
    job = queued_job(lab, bob, tmp_path, name=f"{slug}.gcode")
    with capture(execute=True):
        dispatch.dispatch_tick()
    printing.print_job_record(job=job, actor=alice, outcome="started")
    printing.print_job_record(job=job, actor=alice, outcome=outcome, reason="spaghetti")
    return PrintRecord.objects.get(job=job)


def test_a_finished_print_signs_a_make_for_its_owner(
    lab, alice, bob, tmp_path, django_capture_on_commit_callbacks
):
    made = print_by_hand(
        lab, alice, bob, tmp_path, django_capture_on_commit_callbacks, outcome="finished", slug="mk4"
    )
    credential = Credential.objects.get(source=print_record_source(made))
    assert credential.kind == Credential.Kind.MAKE and credential.subject == bob
    make = credential.document["credentialSubject"]["make"]
    assert (make["machine"], make["lab"], make["path"]) == ("MK4", lab.name, "mk4.gcode")
    assert make["gcodeSha256"] == made.gcode_sha
    assert records.credential_verify(credential.document).verified


def test_a_failed_print_made_nothing_and_signs_nothing(
    lab, alice, bob, tmp_path, django_capture_on_commit_callbacks
):
    failed = print_by_hand(
        lab, alice, bob, tmp_path, django_capture_on_commit_callbacks, outcome="failed", slug="mk3"
    )
    assert failed.result == "failed"
    assert not Credential.objects.filter(source=print_record_source(failed)).exists()


def test_the_hub_publishes_every_key_it_signed_with(client, alice):
    records.credential_issue(
        kind="make",
        source="tests.make:1",
        subject=alice,
        name="n",
        description="d",
        achievement_type="Achievement",
        details={},
    )
    call_command("rotate_signing_key", stdout=open("/dev/null", "w"))
    response = client.get("/.well-known/did.json")
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    document = response.json()
    assert document["id"] == "http://testserver/"
    assert len(document["verificationMethod"]) == 2
    assert document["assertionMethod"] == [m["id"] for m in document["verificationMethod"]]


def test_a_status_list_past_the_last_one_is_a_404(client):
    assert client.get(reverse("credential-status-list", args=[0])).status_code == 200
    assert client.get(reverse("credential-status-list", args=[1])).status_code == 404


def test_a_qualification_s_record_is_public(lab, alice, bob, client):
    credential = Credential.objects.get(source=qualification_source(qualify(lab, alice, bob)))
    response = client.get(reverse("credential-document", args=[credential.pk]))
    assert response.status_code == 200
    assert response.json() == credential.document


def test_a_record_no_app_claims_is_seen_only_by_its_subject(alice, bob):
    credential = records.credential_issue(
        kind="make",
        source="nobody.knows:1",
        subject=alice,
        name="n",
        description="d",
        achievement_type="Achievement",
        details={},
    )
    url = reverse("credential-document", args=[credential.pk])
    client = Client()
    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 200


def test_the_record_of_a_print_of_a_private_design_is_as_private_as_the_design(lab, alice, bob, client):
    design = DesignFactory(owner=bob, slug="bracket")
    record = PrintRecord.objects.create(
        lab=lab,
        machine_name="MK4",
        owner=bob,
        owner_name="bob",
        design=design,
        design_name=design.full_name,
        path="bracket.stl",
        commit_sha="a" * 40,
        gcode_sha="b" * 64,
        ended_at=timezone.now(),
        result=PrintRecord.Result.DONE,
    )
    credential = print_record_credential_issue(record)
    assert credential is not None
    url = reverse("credential-document", args=[credential.pk])
    assert client.get(url).status_code == 200
    design.visibility = "private"
    design.save()
    assert client.get(url).status_code == 404
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 200


class TestVerifyApi:
    @pytest.fixture
    def credential(self, alice):
        return records.credential_issue(
            kind="make",
            source="tests.make:1",
            subject=alice,
            name="Made it",
            description="d",
            achievement_type="Achievement",
            details={"commit": "a" * 40},
        )

    def test_anyone_may_check_a_record_offline(self, client, credential):
        response = client.post(
            "/api/credentials/verify/", {"record": credential.document}, content_type="application/json"
        )
        assert response.status_code == 200
        assert response.json()["status"] == "verified"

    def test_a_changed_record_is_reported_tampered_with_the_failing_check(self, client, credential):
        record = copy.deepcopy(credential.document)
        record["credentialSubject"]["make"]["commit"] = "b" * 40
        body = client.post(
            "/api/credentials/verify/", {"record": record}, content_type="application/json"
        ).json()
        assert body["status"] == "tampered" and body["verified"] is False
        assert [c["name"] for c in body["checks"] if not c["ok"]] == ["signature"]

    def test_an_online_check_needs_a_sign_in_and_then_reads_the_status(self, client, alice, credential):
        body = {"record": credential.document, "online": True}
        assert (
            client.post("/api/credentials/verify/", body, content_type="application/json").status_code == 403
        )
        records.credential_revoke(source="tests.make:1", reason="test")
        response = client_for(alice).post("/api/credentials/verify/", body, format="json")
        assert response.json()["status"] == "revoked"

    @pytest.mark.parametrize(
        "body", [{}, {"record": None}, {"online": False}, {"record": {}, "online": "yes"}, []]
    )
    def test_a_request_without_a_record_is_a_400(self, client, body):
        response = client.post("/api/credentials/verify/", body, content_type="application/json")
        assert response.status_code == 400, response.content

    def test_an_oversized_record_is_refused_unread(self, client, credential):
        record = {**credential.document, "padding": "x" * (records.MAX_RECORD_BYTES + 1)}
        body = client.post(
            "/api/credentials/verify/", {"record": record}, content_type="application/json"
        ).json()
        assert body["status"] == "malformed" and body["checks"][0]["name"] == "size"

    def test_a_form_is_refused(self, client, credential):
        response = client.post("/api/credentials/verify/", {"record": "x"})
        assert response.status_code == 415


class TestVerifyCommand:
    def test_it_reads_a_file_and_exits_0_for_a_good_record_and_1_for_a_changed_one(
        self, alice, tmp_path, capsys
    ):
        credential = records.credential_issue(
            kind="make",
            source="tests.make:1",
            subject=alice,
            name="n",
            description="d",
            achievement_type="Achievement",
            details={},
        )
        good = tmp_path / "good.json"
        good.write_text(json.dumps(credential.document))
        call_command("verify_record", str(good))
        assert capsys.readouterr().out.startswith("verified")
        changed = tmp_path / "changed.json"
        changed.write_text(json.dumps({**credential.document, "name": "Made something else"}))
        with pytest.raises(SystemExit) as exit_:
            call_command("verify_record", str(changed), "--json")
        assert exit_.value.code == 1
        assert json.loads(capsys.readouterr().out)["status"] == "tampered"

    def test_it_refuses_what_is_not_json_or_too_large(self, tmp_path):
        from django.core.management.base import CommandError

        garbage = tmp_path / "garbage.json"
        garbage.write_bytes(b"\xff\xfe not json")
        with pytest.raises(CommandError, match="not JSON"):
            call_command("verify_record", str(garbage))
        huge = tmp_path / "huge.json"
        huge.write_text("[" + "1," * records.MAX_RECORD_BYTES + "1]")
        with pytest.raises(CommandError, match="at most"):
            call_command("verify_record", str(huge))


def test_backfill_signs_qualifications_recorded_before_the_hub_signed_them(lab, alice, bob):
    qualification = qualify(lab, alice, bob)
    Credential.objects.all().delete()
    call_command("issue_credentials", stdout=open("/dev/null", "w"))
    assert Credential.objects.filter(source=qualification_source(qualification)).exists()
    call_command("issue_credentials", stdout=open("/dev/null", "w"))
    assert Credential.objects.count() == 1
