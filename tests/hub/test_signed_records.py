"""Signed records (hub.records): issued, verified offline and online, revoked, rotated,
and every way a record can be wrong reported as that way."""

from __future__ import annotations

import copy
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub import records, signing
from hub.models import Credential

pytestmark = pytest.mark.django_db


def issue(subject, source="tests.make:1", **overrides):
    arguments = {
        "kind": Credential.Kind.MAKE,
        "source": source,
        "subject": subject,
        "name": "Made the bracket",
        "description": "Printed ada/bracket at 0123456789",
        "achievement_type": "Achievement",
        "details": {"design": "ada/bracket", "commit": "0123456789" * 4},
    }
    arguments.update(overrides)
    return records.credential_issue(**arguments)


def no_fetch(url):
    raise AssertionError(f"an offline check fetched {url}")


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.FABHUB_PUBLIC_URL = "http://hub-a.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {}


def test_a_record_the_hub_issued_verifies_offline(alice):
    credential = issue(alice)
    report = records.credential_verify(credential.document, online=False, fetch=no_fetch)
    assert report.status == "verified", report.as_dict()
    assert report.issuer == "http://hub-a.test:8000/"
    assert report.subject == "http://hub-a.test:8000/alice/"


def test_issuing_twice_for_one_event_returns_the_same_record(alice):
    assert issue(alice).pk == issue(alice).pk
    assert Credential.objects.count() == 1


def test_each_record_takes_its_own_position_in_the_status_list(alice):
    first, second = issue(alice, "tests.make:1"), issue(alice, "tests.make:2")
    assert {first.status_index, second.status_index} == {0, 1}
    assert second.document["credentialStatus"]["statusListIndex"] == "1"


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["credentialSubject"].__setitem__("id", "http://hub-a.test:8000/mallory/"),
        lambda d: d["credentialSubject"]["make"].__setitem__("commit", "f" * 40),
        lambda d: d.__setitem__("validFrom", "2020-01-01T00:00:00Z"),
        lambda d: d["proof"].__setitem__("created", "2020-01-01T00:00:00Z"),
        lambda d: d.__setitem__("extra", "an added member"),
    ],
)
def test_a_record_with_one_field_changed_is_reported_as_tampered(alice, change):
    document = copy.deepcopy(issue(alice).document)
    change(document)
    report = records.credential_verify(document, fetch=no_fetch)
    assert report.status == "tampered", report.as_dict()
    assert not report.verified


def test_a_record_signed_by_a_key_the_issuer_does_not_hold_is_an_unknown_key(alice):
    """A forger who signs with their own key and names it in the record gets nowhere:
    the record's own key name is never taken on trust."""
    document = copy.deepcopy(issue(alice).document)
    forger = Ed25519PrivateKey.generate()
    name = signing.public_key_name(forger.public_key())
    proof = {**document.pop("proof"), "verificationMethod": f"http://hub-a.test:8000/#{name}"}
    proof.pop("proofValue")
    document["credentialSubject"]["make"]["commit"] = "f" * 40
    signature = forger.sign(signing.signing_input(document, proof))
    document["proof"] = {**proof, "proofValue": "z" + signing.base58btc_encode(signature)}
    report = records.credential_verify(document, fetch=no_fetch)
    assert report.status == "unknown-key", report.as_dict()


def test_a_record_from_a_hub_nobody_trusts_is_an_unknown_key(alice, settings):
    document = issue(alice).document
    settings.FABHUB_PUBLIC_URL = "http://hub-b.test:8000"
    report = records.credential_verify(document, fetch=no_fetch)
    assert report.status == "unknown-key"
    assert "trust list" in report.checks[-1].detail


def test_a_record_from_a_hub_on_the_trust_list_verifies(alice, settings):
    credential = issue(alice)
    key = credential.document["proof"]["verificationMethod"].split("#")[1]
    settings.FABHUB_PUBLIC_URL = "http://hub-b.test:8000"
    settings.FABHUB_TRUSTED_ISSUERS = {"http://hub-a.test:8000": [key]}
    report = records.credential_verify(credential.document, fetch=no_fetch)
    assert report.status == "verified", report.as_dict()
    assert "trust list" in report.checks[0].detail


def test_records_signed_before_a_key_rotation_still_verify(alice):
    old = issue(alice, "tests.make:1")
    signing.signing_key_rotate()
    new = issue(alice, "tests.make:2")
    assert old.document["proof"]["verificationMethod"] != new.document["proof"]["verificationMethod"]
    for credential in (old, new):
        assert records.credential_verify(credential.document, fetch=no_fetch).verified
    published = [m["publicKeyMultibase"] for m in records.did_document()["verificationMethod"]]
    assert len(published) == 2


def test_a_revoked_record_is_reported_revoked_online_and_still_authentic_offline(alice):
    credential = issue(alice, "tests.qualification:1", kind=Credential.Kind.QUALIFICATION)
    other = issue(alice, "tests.qualification:2", kind=Credential.Kind.QUALIFICATION)
    assert records.credential_revoke(source="tests.qualification:1", reason="retrained needed") == 1
    online = records.credential_verify(credential.document, online=True, fetch=no_fetch)
    assert online.status == "revoked", online.as_dict()
    assert records.credential_verify(other.document, online=True, fetch=no_fetch).verified
    assert records.credential_verify(credential.document, online=False, fetch=no_fetch).verified


def test_a_record_past_its_validity_is_expired(alice):
    from datetime import datetime, timedelta

    from django.utils import timezone

    ended = timezone.now() - timedelta(days=1)
    credential = issue(alice, valid_from=datetime(2020, 1, 1, tzinfo=ended.tzinfo), valid_until=ended)
    assert records.credential_verify(credential.document, fetch=no_fetch).status == "expired"


def test_the_status_list_sets_exactly_the_revoked_bits():
    encoded = records.encode_status_bits([0, 9, records.STATUS_LIST_BITS - 1])
    bits = records.decode_status_bits(encoded)
    assert len(bits) == records.STATUS_LIST_BITS // 8
    assert bits[0] == 0x80 and bits[1] == 0x40 and bits[-1] == 0x01
    assert sum(bin(byte).count("1") for byte in bits) == 3


def test_a_status_list_that_inflates_past_its_size_is_refused():
    import base64
    import gzip

    bomb = "u" + base64.urlsafe_b64encode(gzip.compress(b"\0" * 10_000_000)).decode().rstrip("=")
    with pytest.raises(signing.BadEncoding):
        records.decode_status_bits(bomb)


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "a string",
        {"type": ["VerifiableCredential"]},
        {"type": ["VerifiableCredential"], "proof": "z123"},
        {"type": ["VerifiableCredential"], "issuer": "x", "proof": {"type": "Ed25519Signature2018"}},
        {
            "type": ["VerifiableCredential"],
            "issuer": "x",
            "proof": {
                "type": "DataIntegrityProof",
                "cryptosuite": "eddsa-jcs-2022",
                "verificationMethod": "y#z",
            },
        },
    ],
)
def test_a_document_that_is_not_a_signed_record_is_malformed(document):
    assert records.credential_verify(document, fetch=no_fetch).status == "malformed"


def test_an_oversized_record_is_refused_before_it_is_read(alice):
    document = copy.deepcopy(issue(alice).document)
    document["padding"] = "x" * records.MAX_RECORD_BYTES
    report = records.credential_verify(document, fetch=no_fetch)
    assert report.status == "malformed" and report.checks[0].name == "size"


def test_a_forged_proof_value_is_tampered_or_malformed(alice):
    document = copy.deepcopy(issue(alice).document)
    document["proof"]["proofValue"] = "z" + signing.base58btc_encode(b"\1" * 64)
    assert records.credential_verify(document, fetch=no_fetch).status == "tampered"
    document["proof"]["proofValue"] = "not multibase"
    assert records.credential_verify(document, fetch=no_fetch).status == "malformed"


def test_canonical_json_follows_rfc_8785_ordering_and_escaping():
    # Members sorted by UTF-16 code units: "\u20ac" (one unit) sorts before "\U0001F600"
    # (a surrogate pair, 0xD83D) though its code point is lower.
    value = {"b": [1, True, None], "a": '\n\u00e9"', "\U0001f600": 1, "\u20ac": 2}
    assert (
        signing.canonical_json(value)
        == '{"a":"\\n\u00e9\\"","b":[1,true,null],"\u20ac":2,"\U0001f600":1}'.encode()
    )
    with pytest.raises(signing.BadEncoding):
        signing.canonical_json({"mass": 1.5})


def test_base58btc_round_trips_leading_zero_bytes():
    for data in (b"", b"\0", b"\0\0\1", bytes(range(256))):
        assert signing.base58btc_decode(signing.base58btc_encode(data)) == data


def test_an_https_hub_names_itself_by_did_web(settings):
    settings.FABHUB_PUBLIC_URL = "https://hub.example.org:8443/fab"
    assert records.issuer_id() == "did:web:hub.example.org%3A8443:fab"
    assert records.did_document()["id"] == "did:web:hub.example.org%3A8443:fab"


def test_online_verification_of_a_did_web_issuer_reads_its_published_keys(alice, settings):
    settings.FABHUB_PUBLIC_URL = "https://hub-a.example.org"
    credential = issue(alice)
    did = records.did_document()
    status = records.status_list_document(0)
    settings.FABHUB_PUBLIC_URL = "https://hub-b.example.org"
    fetched = []

    def fetch(url):
        fetched.append(url)
        return {"https://hub-a.example.org/.well-known/did.json": did, status["id"]: status}[url]

    report = records.credential_verify(json.loads(json.dumps(credential.document)), online=True, fetch=fetch)
    assert report.status == "verified", report.as_dict()
    assert fetched[0] == "https://hub-a.example.org/.well-known/did.json"
    assert status["id"] in fetched
