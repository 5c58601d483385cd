"""Signed records: what a person made and what a lab trained them on, as credentials any
hub or tool can check (docs/portability.md).

Format: W3C Verifiable Credentials 2.0 in the Open Badges 3.0 shape
(`OpenBadgeCredential`, an `Achievement` per make or qualification), secured by a Data
Integrity proof with the `eddsa-jcs-2022` cryptosuite: the document is canonicalised
with JCS (RFC 8785) and signed with the hub's Ed25519 key (hub.signing). Revocation is a
W3C Bitstring Status List the hub publishes as a signed credential of its own.

The feature apps own the events (designs: makes; machines: print records and
qualifications); they call `credential_issue` / `credential_revoke` and register who may
see a record of theirs (`register_credential_source`), since hub imports no feature app.

Verifying never trusts a key because a record names it: the key must be one of this
hub's, one the operator lists in FABHUB_TRUSTED_ISSUERS, or (online, did:web issuers
only) one the issuing hub publishes in its DID document over HTTPS.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from hub.accounts import public_url
from hub.auth import Viewer
from hub.exceptions import ValidationError
from hub.models import Credential, SigningKey, User
from hub.outbound import GuardedSession
from hub.signing import (
    BadEncoding,
    base58btc_encode,
    multibase_decode,
    public_key_from_name,
    published_keys,
    sign,
    signature_valid,
    signing_input,
    signing_key_current,
)

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CRYPTOSUITE = "eddsa-jcs-2022"
# A status list holds this many records (the spec's minimum size: 16 KiB of bits).
STATUS_LIST_BITS = 131_072
# A record is a few KiB; anything much larger is not one of ours and is refused unread.
MAX_RECORD_BYTES = 64 * 1024
STATUS_LIST_PATH = "credentials/status/"


# -- who owns which records -------------------------------------------------------------


@dataclass(frozen=True)
class CredentialSource:
    """A feature app's kind of record: `can_view(credential, viewer)` says who may see one
    (a make of a private design is as private as the design); `backfill()` issues what
    is missing (records of events from before the hub signed them)."""

    prefix: str
    can_view: Callable[[Credential, Viewer], bool]
    backfill: Callable[[], int] | None = None


_sources: dict[str, CredentialSource] = {}


def register_credential_source(source: CredentialSource) -> None:
    _sources[source.prefix] = source


def credential_visible(credential: Credential, viewer: Viewer) -> bool:
    """The subject always sees their own; others as the owning app decides (nobody, for a
    source no app registers)."""
    if viewer.is_authenticated and credential.subject_id == viewer.pk:
        return True
    owner = _sources.get(credential.source.split(":", 1)[0])
    return owner is not None and owner.can_view(credential, viewer)


# -- addresses ----------------------------------------------------------------------------


def hub_root() -> str:
    """The hub's public address, ending in '/'. Records name it, so it must not depend on
    which request happened to issue them: FABHUB_PUBLIC_URL (set it in production)."""
    return public_url("/")


def issuer_id(root: str | None = None) -> str:
    """`did:web:<host>` for a hub served over HTTPS (DID documents are only fetched over
    HTTPS); the hub's address otherwise, which only a trust list can vouch for."""
    root = root or hub_root()
    parts = urlsplit(root)
    if parts.scheme != "https" or not parts.hostname:
        return root
    did = "did:web:" + quote(parts.netloc, safe="")
    path = parts.path.strip("/")
    return did + ("".join(":" + quote(segment, safe="") for segment in path.split("/")) if path else "")


def account_url(username: str) -> str:
    return f"{hub_root()}{quote(username)}/"


def status_list_url(number: int) -> str:
    return f"{hub_root()}{STATUS_LIST_PATH}{number}"


def credential_url(credential: Credential) -> str:
    return f"{hub_root()}credentials/{credential.pk}.json"


# -- issuing and revoking ----------------------------------------------------------------


def document_sign(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with a proof by the hub's current key (an archive's manifest, a proof of
    account control): verified by `verify_signature` like any record."""
    unsigned = {key: value for key, value in document.items() if key != "proof"}
    unsigned.setdefault("issuer", {"id": issuer_id(), "url": hub_root()})
    return {**unsigned, "proof": _proof(signing_key_current(), unsigned)}


def _proof(key: SigningKey, document: dict) -> dict:
    options = {
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "created": _instant(timezone.now()),
        "verificationMethod": f"{issuer_id()}#{key.key_id}",
        "proofPurpose": "assertionMethod",
    }
    signature = sign(key, signing_input(document, options))
    return {**options, "proofValue": "z" + base58btc_encode(signature)}


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _next_status_index() -> int:
    highest = Credential.objects.aggregate(highest=Max("status_index"))["highest"]
    return 0 if highest is None else highest + 1


def credential_issue(
    *,
    kind: str,
    source: str,
    subject: User,
    name: str,
    description: str,
    achievement_type: str,
    details: dict[str, Any],
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> Credential:
    """Sign and store a record about `subject`. `source` names the event in the owning
    app ("designs.make:12"); while a record for it is unrevoked, that one is returned.
    `details` go under the subject (`make` or `qualification`): strings, integers,
    booleans, lists and objects of them."""
    live = Credential.objects.filter(source=source, revoked_at__isnull=True).first()
    if live is not None:
        return live
    key = signing_key_current()
    issued_at = timezone.now()
    for _attempt in range(5):  # two issuers may take the same status index at once
        index = _next_status_index()
        credential = Credential(
            kind=kind, source=source, subject=subject, status_index=index, issued_at=issued_at
        )
        document: dict[str, Any] = {
            "@context": [VC_CONTEXT, OB_CONTEXT],
            "id": f"urn:uuid:{credential.pk}",
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": {"id": issuer_id(), "type": ["Profile"], "name": _hub_name(), "url": hub_root()},
            "validFrom": _instant(valid_from or issued_at),
            "name": name,
            "credentialSubject": {
                "id": account_url(subject.username),
                "type": ["AchievementSubject"],
                "achievement": {
                    "id": f"{hub_root()}credentials/{credential.pk}.json#achievement",
                    "type": ["Achievement"],
                    "achievementType": achievement_type,
                    "name": name,
                    "description": description,
                    "criteria": {"narrative": description},
                },
                kind: details,
            },
            "credentialStatus": {
                "id": f"{status_list_url(index // STATUS_LIST_BITS)}#{index % STATUS_LIST_BITS}",
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": str(index % STATUS_LIST_BITS),
                "statusListCredential": status_list_url(index // STATUS_LIST_BITS),
            },
        }
        if valid_until is not None:
            document["validUntil"] = _instant(valid_until)
        document["proof"] = _proof(key, document)
        credential.document = document
        try:
            with transaction.atomic():
                credential.save(force_insert=True)
        except IntegrityError:
            live = Credential.objects.filter(source=source, revoked_at__isnull=True).first()
            if live is not None:
                return live
            continue
        return credential
    raise RuntimeError("could not take a status index for a new record")


def credential_revoke(*, source: str, reason: str) -> int:
    """Revoke the live record of `source` (a lab withdrew a qualification); verifiers see
    it on the next read of the status list. Returns how many were revoked (0 or 1)."""
    return Credential.objects.filter(source=source, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revocation_reason=reason[:200]
    )


def credentials_by_source(sources: Iterable[str]) -> dict[str, Credential]:
    """The live record of each source that has one (one query)."""
    return {
        credential.source: credential
        for credential in Credential.objects.filter(source__in=list(sources), revoked_at__isnull=True)
    }


def credentials_backfill() -> int:
    """Issue what the registered apps find missing; returns how many were issued."""
    return sum(source.backfill() for source in _sources.values() if source.backfill is not None)


def _hub_name() -> str:
    return f"fabhub at {urlsplit(hub_root()).netloc}"


# -- what the hub publishes ---------------------------------------------------------------


def did_document() -> dict:
    """The hub's keys as a DID document (served at /.well-known/did.json): every key it
    ever signed with, so records signed before a rotation still verify."""
    me = issuer_id()
    methods = [
        {
            "id": f"{me}#{key.key_id}",
            "type": "Multikey",
            "controller": me,
            "publicKeyMultibase": key.public_key,
        }
        for key in published_keys() or [signing_key_current()]
    ]
    return {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": me,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
    }


def encode_status_bits(revoked: Iterable[int]) -> str:
    bits = bytearray(STATUS_LIST_BITS // 8)
    for index in revoked:
        bits[index // 8] |= 0x80 >> (index % 8)  # index 0 is the first byte's highest bit
    return "u" + base64.urlsafe_b64encode(gzip.compress(bytes(bits), mtime=0)).decode().rstrip("=")


def decode_status_bits(encoded: str) -> bytes:
    if not isinstance(encoded, str) or not encoded.startswith("u") or len(encoded) > MAX_RECORD_BYTES:
        raise BadEncoding("encodedList is not multibase base64url")
    compressed = base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4))
    # Bounded: a status list is 16 KiB of bits; a gzip bomb stops at twice that.
    decompressor = zlib.decompressobj(wbits=31)
    bits = decompressor.decompress(compressed, STATUS_LIST_BITS // 4)
    if decompressor.unconsumed_tail:
        raise BadEncoding("the status list is larger than any list the hub reads")
    return bits


def status_list_document(number: int) -> dict:
    """The signed revocation list `number`: one bit per record, set when revoked."""
    first = number * STATUS_LIST_BITS
    revoked = Credential.objects.filter(
        revoked_at__isnull=False, status_index__gte=first, status_index__lt=first + STATUS_LIST_BITS
    ).values_list("status_index", flat=True)
    url = status_list_url(number)
    document: dict[str, Any] = {
        "@context": [VC_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": {"id": issuer_id(), "type": ["Profile"], "name": _hub_name(), "url": hub_root()},
        "validFrom": _instant(timezone.now()),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_status_bits(index - first for index in revoked),
        },
    }
    document["proof"] = _proof(signing_key_current(), document)
    return document


# -- verifying ----------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    """What a verifier found. `status` is one word a program can act on:
    verified, tampered, unknown-key, revoked, expired, not-yet-valid, malformed,
    status-unavailable."""

    status: str = "verified"
    issuer: str = ""
    subject: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def fail(self, status: str, name: str, detail: str) -> Verification:
        if self.status == "verified":
            self.status = status
        self.checks.append(Check(name, False, detail))
        return self

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "verified": self.verified,
            "issuer": self.issuer,
            "subject": self.subject,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def trusted_issuers() -> dict[str, list[str]]:
    """FABHUB_TRUSTED_ISSUERS: the operator's list of other hubs (issuer id or address →
    public key names), how hubs on plain HTTP vouch for each other."""
    return {_normalise_issuer(issuer): list(keys) for issuer, keys in settings.FABHUB_TRUSTED_ISSUERS.items()}


def _normalise_issuer(issuer: str) -> str:
    return issuer if issuer.startswith("did:") else issuer.rstrip("/") + "/"


Fetch = Callable[[str], dict]


def fetch_json(url: str) -> dict:
    """A JSON document from another hub, through the hub's outbound address policy."""
    with GuardedSession(max_response_bytes=MAX_RECORD_BYTES) as session:
        response = session.get(url, headers={"Accept": "application/json"}, timeout=(5, 10))
    if response.status_code != 200:
        raise LookupError(f"{url} answered {response.status_code}")
    document = json.loads(response.content)
    if not isinstance(document, dict):
        raise LookupError(f"{url} did not answer a JSON object")
    return document


def issuer_home(issuer: str) -> str:
    """The site an issuer speaks from, ending in '/'."""
    if not issuer.startswith("did:web:"):
        return _normalise_issuer(issuer)
    segments = issuer.removeprefix("did:web:").split(":")
    host = segments[0].replace("%3A", ":").replace("%3a", ":")
    return "/".join([f"https://{host}", *segments[1:]]) + "/"


def _did_web_url(did: str) -> str:
    segments = did.removeprefix("did:web:").split(":")
    host = segments[0].replace("%3A", ":").replace("%3a", ":")
    path = "/".join(segments[1:])
    return f"https://{host}/{path}/did.json" if path else f"https://{host}/.well-known/did.json"


def issuer_keys(issuer: str, *, online: bool, fetch: Fetch) -> tuple[list[str], str]:
    """The keys that may speak for `issuer`, and where they came from."""
    if issuer == issuer_id():
        return [key.public_key for key in published_keys()], "this hub's own keys"
    trusted = trusted_issuers().get(_normalise_issuer(issuer))
    if trusted:
        return trusted, "the operator's trust list"
    if online and issuer.startswith("did:web:"):
        document = fetch(_did_web_url(issuer))
        keys = [
            method.get("publicKeyMultibase", "")
            for method in document.get("verificationMethod", [])
            if isinstance(method, dict) and str(method.get("id", "")).startswith(issuer + "#")
        ]
        return [key for key in keys if isinstance(key, str)], "the issuer's DID document"
    return [], ""


def issuer_of(document: dict) -> str:
    issuer = document.get("issuer")
    if isinstance(issuer, dict):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else ""


def verify_signature(document: Any, *, online: bool, fetch: Fetch, report: Verification) -> bool:
    """Checks the proof of `document` against a key its issuer is trusted to hold."""
    if not isinstance(document, dict) or not isinstance(document.get("proof"), dict):
        report.fail("malformed", "shape", "Not a signed record: no proof.")
        return False
    proof = document["proof"]
    issuer = issuer_of(document)
    report.issuer = report.issuer or issuer
    method = proof.get("verificationMethod")
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != CRYPTOSUITE:
        report.fail("malformed", "proof", f"Only DataIntegrityProof with {CRYPTOSUITE} is read.")
        return False
    if not issuer or not isinstance(method, str) or not method.startswith(issuer + "#"):
        report.fail("malformed", "proof", "The proof's key does not belong to the record's issuer.")
        return False
    if proof.get("proofPurpose") != "assertionMethod":
        report.fail("malformed", "proof", "The proof is not an assertion.")
        return False
    key_name = method.split("#", 1)[1]
    try:
        keys, where = issuer_keys(issuer, online=online, fetch=fetch)
    except (LookupError, ValueError, requests.RequestException) as exc:
        report.fail("status-unavailable", "issuer key", f"Could not read the issuer's keys: {exc}")
        return False
    if key_name not in keys:
        report.fail(
            "unknown-key",
            "issuer key",
            f"{key_name[:16]}… is not a key {issuer} is known to hold"
            + (
                f" ({where})."
                if where
                else " (not this hub, not on the trust list, not a did:web issuer checked online)."
            ),
        )
        return False
    try:
        public_key = public_key_from_name(key_name)
        signature = multibase_decode(proof.get("proofValue", ""))
        message = signing_input(document, proof)
    except (BadEncoding, ValueError) as exc:
        report.fail("malformed", "signature", f"The record cannot be read as signed JSON: {exc}")
        return False
    if not signature_valid(public_key, signature, message):
        report.fail(
            "tampered",
            "signature",
            "The signature does not match: the record was changed after it was signed.",
        )
        return False
    report.passed("signature", f"Signed by {issuer} with a key from {where}.")
    return True


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value
    ):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def credential_verify(document: Any, *, online: bool = False, fetch: Fetch = fetch_json) -> Verification:
    """Offline: the shape, the signature and the issuer's key, the validity period.
    Online: also the revocation status, read from the issuer's signed status list (and,
    for did:web issuers, the keys from the issuer's own DID document)."""
    report = Verification()
    try:
        size = len(json.dumps(document))
    except (TypeError, ValueError):
        return report.fail("malformed", "shape", "Not JSON.")
    if size > MAX_RECORD_BYTES:
        return report.fail(
            "malformed", "size", f"A record is at most {MAX_RECORD_BYTES // 1024} KiB; this is {size}."
        )
    if not isinstance(document, dict) or "VerifiableCredential" not in (document.get("type") or []):
        return report.fail("malformed", "shape", "Not a verifiable credential.")
    subject = document.get("credentialSubject")
    report.subject = (
        subject.get("id", "") if isinstance(subject, dict) and isinstance(subject.get("id"), str) else ""
    )
    if not verify_signature(document, online=online, fetch=fetch, report=report):
        return report
    now = timezone.now()
    valid_from, valid_until = _parse_instant(document.get("validFrom")), document.get("validUntil")
    if valid_from is None:
        return report.fail("malformed", "validity", "validFrom is missing or not an instant.")
    if valid_from > now:
        report.fail("not-yet-valid", "validity", f"Valid only from {document['validFrom']}.")
    if valid_until is not None:
        until = _parse_instant(valid_until)
        if until is None:
            return report.fail("malformed", "validity", "validUntil is not an instant.")
        if until < now:
            report.fail("expired", "validity", f"Expired on {valid_until}.")
    if report.verified:
        report.passed("validity", "Within its validity period.")
    if online:
        _check_status(document, report, fetch=fetch)
    else:
        report.passed("revocation", "Not checked offline.")
    return report


def _check_status(document: dict, report: Verification, *, fetch: Fetch) -> None:
    status = document.get("credentialStatus")
    if status is None:
        report.passed("revocation", "The record has no revocation status.")
        return
    if not isinstance(status, dict) or status.get("type") != "BitstringStatusListEntry":
        report.fail("malformed", "revocation", "credentialStatus is not a BitstringStatusListEntry.")
        return
    list_url, index = status.get("statusListCredential"), status.get("statusListIndex")
    issuer = report.issuer
    # The list must be on the issuer's own site: a record cannot send a verifier anywhere else.
    if not isinstance(list_url, str) or not list_url.startswith(issuer_home(issuer)):
        report.fail("malformed", "revocation", "The status list is not on the issuer's own site.")
        return
    if not isinstance(index, str) or not index.isdigit() or int(index) >= STATUS_LIST_BITS:
        report.fail("malformed", "revocation", "statusListIndex is not a position in a status list.")
        return
    try:
        if issuer == issuer_id():
            number = int(list_url.removeprefix(hub_root() + STATUS_LIST_PATH))
            listing = status_list_document(number)
        else:
            listing = fetch(list_url)
    except (LookupError, ValueError, requests.RequestException) as exc:
        report.fail("status-unavailable", "revocation", f"Could not read the status list: {exc}")
        return
    list_report = Verification()
    if issuer_of(listing) != issuer or not verify_signature(
        listing, online=True, fetch=fetch, report=list_report
    ):
        report.fail(
            "status-unavailable", "revocation", "The status list is not signed by the record's issuer."
        )
        return
    try:
        bits = decode_status_bits(listing.get("credentialSubject", {}).get("encodedList", ""))
    except (BadEncoding, ValueError, OSError, EOFError) as exc:
        report.fail("status-unavailable", "revocation", f"The status list cannot be read: {exc}")
        return
    position = int(index)
    if position // 8 >= len(bits):
        report.fail(
            "status-unavailable", "revocation", "The status list is shorter than the record's position."
        )
    elif bits[position // 8] & (0x80 >> (position % 8)):
        report.fail("revoked", "revocation", "The issuer has revoked this record.")
    else:
        report.passed("revocation", "Not revoked (the issuer's status list, read now).")


def parse_record(raw: bytes) -> Any:
    """A record as sent to the verify endpoint or command: bounded, JSON."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValidationError(f"A record is at most {MAX_RECORD_BYTES // 1024} KiB.")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("The record is not JSON.") from None
