"""Account archives as people ask for them (pages and API alike): an export requested and
downloaded, an archive from another hub uploaded for import, what it brought shown, and
the claim of its records. The container, its checks and the signatures are hub.archives;
this module only starts its jobs, guards who reaches them and reads their results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from hub import archives, records
from hub.exceptions import Conflict, NotFound, TooLarge, ValidationError
from hub.models import AccountArchive, ArchiveImport, ImportedRecord, User
from hub.queue import enqueue
from hub.uploads import too_large_message

# A proof of account control is one small signed document.
MAX_PROOF_BYTES = 64 * 1024
ARCHIVE_IN_FLIGHT = (AccountArchive.Status.QUEUED, AccountArchive.Status.BUILDING)
IMPORT_IN_FLIGHT = (ArchiveImport.Status.QUEUED, ArchiveImport.Status.IMPORTING)


# -- exports ------------------------------------------------------------------------------


def archive_request(*, owner: User) -> AccountArchive:
    """Queue an archive of everything `owner` has here; one at a time per person (409)."""
    with transaction.atomic():
        # The person's row is the lock: two requests at once cannot both find none queued.
        User.objects.select_for_update().filter(pk=owner.pk).first()
        if AccountArchive.objects.filter(owner=owner, status__in=ARCHIVE_IN_FLIGHT).exists():
            raise Conflict("An archive of yours is already being built: wait for it to finish.")
        archive = AccountArchive.objects.create(owner=owner)
        enqueue("hub.tasks.archive_build", str(archive.pk))
    return archive


def archives_of(owner: User) -> QuerySet[AccountArchive]:
    return AccountArchive.objects.filter(owner=owner)


def archive_get(*, owner: User, archive_id: Any) -> AccountArchive:
    """`owner`'s archive; anyone else's (staff included) is not found."""
    archive = AccountArchive.objects.filter(pk=archive_id, owner=owner).select_related("owner").first()
    if archive is None:
        raise NotFound("No such archive.")
    return archive


def archive_expired(archive: AccountArchive) -> bool:
    return archive.expires_at is not None and archive.expires_at <= timezone.now()


def archive_file(archive: AccountArchive) -> Path:
    """The archive's file, ready to send: 409 while it is being built or if it failed, 404
    once it expired (the ticker deletes it soon after)."""
    if archive.status != AccountArchive.Status.READY:
        raise Conflict(
            "This archive failed: ask for a new one."
            if archive.status == AccountArchive.Status.FAILED
            else "This archive is not ready yet."
        )
    path = archives.archive_path(archive)
    if archive_expired(archive) or not path.is_file():
        raise NotFound("This archive has expired: ask for a new one.")
    return path


def archive_filename(archive: AccountArchive) -> str:
    day = (archive.finished_at or archive.created_at).date().isoformat()
    return f"fabhub-{archive.owner.username}-{day}.zip"


# -- imports ------------------------------------------------------------------------------


def archive_import_start(*, account: User, upload: UploadedFile) -> ArchiveImport:
    """Keep an uploaded archive and queue its import into `account`; one import at a time
    per person (409). Checking it is the job's: nothing is read here."""
    limit = settings.FABHUB_MAX_ARCHIVE_BYTES
    if upload.size is not None and upload.size > limit:
        raise TooLarge(too_large_message(upload.name or "The archive", upload.size, limit), limit=limit)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=account.pk).first()
        if ArchiveImport.objects.filter(account=account, status__in=IMPORT_IN_FLIGHT).exists():
            raise Conflict("An archive is already being imported into your account: wait for it to finish.")
        job = ArchiveImport.objects.create(account=account)
        path = archives.import_path(job)
        try:
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        enqueue("hub.tasks.archive_import", str(job.pk))
    return job


def imports_of(account: User) -> QuerySet[ArchiveImport]:
    return ArchiveImport.objects.filter(account=account)


def import_get(*, account: User, import_id: Any) -> ArchiveImport:
    job = ArchiveImport.objects.filter(pk=import_id, account=account).select_related("account").first()
    if job is None:
        raise NotFound("No such import.")
    return job


# -- claiming the imported records --------------------------------------------------------


def _claimable(job: ArchiveImport) -> QuerySet[ImportedRecord]:
    # What hub.archives.records_claim claims: every verified record of that hub.
    return ImportedRecord.objects.filter(
        account=job.account,
        source_hub=job.source_hub,
        kind=ImportedRecord.Kind.CREDENTIAL,
        verification="verified",
        claimed_at__isnull=True,
    )


def claim_open(job: ArchiveImport) -> bool:
    """Whether the import's records can be claimed now (a finished, verified import with
    verified records not claimed yet)."""
    return (
        job.status == ArchiveImport.Status.DONE and job.signature == "verified" and _claimable(job).exists()
    )


def claim_start(*, archive_import: ArchiveImport) -> str:
    """A fresh challenge for the source hub to sign (409 when there is nothing to claim)."""
    if archive_import.status != ArchiveImport.Status.DONE:
        raise Conflict("The import is not finished.")
    if archive_import.signature != "verified":
        raise Conflict("This archive's hub cannot be checked from here: its records stay unverified.")
    if not _claimable(archive_import).exists():
        raise Conflict("No verified record of this archive is waiting to be claimed.")
    return archives.claim_challenge(archive_import=archive_import)


def claim_pending(job: ArchiveImport) -> bool:
    """A challenge was given and is still fresh enough to answer."""
    return bool(
        job.claim_challenge
        and job.claim_challenge_at is not None
        and timezone.now() - job.claim_challenge_at <= archives.CLAIM_LIFETIME
    )


def authorise_url(job: ArchiveImport) -> str:
    """Where the person signs the challenge: the source hub's authorise page, told which
    account here is to claim the records."""
    query = urlencode(
        {"challenge": job.claim_challenge, "audience": records.account_url(job.account.username)}
    )
    return f"{job.source_hub.rstrip('/')}/credentials/authorise/?{query}"


def proof_parse(text: str) -> dict[str, Any]:
    """The proof as pasted: one JSON object of at most 64 KiB."""
    raw = text.strip().encode()
    if not raw:
        raise ValidationError("Paste the proof the other hub gave you.", field="proof")
    if len(raw) > MAX_PROOF_BYTES:
        raise ValidationError(
            f"A proof is at most {MAX_PROOF_BYTES // 1024} KiB: this is not one.", field="proof"
        )
    proof = archives.parse_json(raw, name="The proof")
    if not isinstance(proof, dict):
        raise ValidationError("The proof is one JSON object: paste it whole, as the other hub shows it.")
    return proof


def records_claim(*, archive_import: ArchiveImport, proof: dict[str, Any]) -> int:
    if len(json.dumps(proof)) > MAX_PROOF_BYTES:
        raise ValidationError(f"A proof is at most {MAX_PROOF_BYTES // 1024} KiB: this is not one.")
    return archives.records_claim(archive_import=archive_import, proof=proof)


def account_control_proof(*, user: User, challenge: str, audience: str) -> dict[str, Any]:
    return archives.account_control_proof(user=user, challenge=challenge, audience=audience)


def audience_home(audience: str) -> str:
    """The site an audience's account lives on (a plain link back; never followed here)."""
    parts = urlsplit(audience)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("The audience must be the address of an account on another hub.")
    return f"{parts.scheme}://{parts.netloc}/"


# -- what an import brought ----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """An imported record as a page shows it: plain text from whatever the archive held."""

    record: ImportedRecord
    title: str
    detail: str
    issued_by: str = ""
    issued_to: str = ""


def _text(value: Any, limit: int = 300) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(data: Any, *names: str) -> Any:
    for name in names:
        if isinstance(data, dict):
            data = data.get(name)
        else:
            return None
    return data


def history_entry(record: ImportedRecord) -> HistoryEntry:
    data = record.data if isinstance(record.data, dict) else {}
    if record.kind == ImportedRecord.Kind.CREDENTIAL:
        issuer = data.get("issuer")
        issued_by = _field(issuer, "url") or _field(issuer, "id") or issuer
        return HistoryEntry(
            record=record,
            title=_text(data.get("name") or "A signed record"),
            detail=_text(_field(data, "credentialSubject", "achievement", "description")),
            issued_by=_text(issued_by),
            issued_to=_text(_field(data, "credentialSubject", "id")),
        )
    if record.kind == ImportedRecord.Kind.BOOKING:
        title = f"{_text(data.get('machine'))} at {_text(data.get('lab'))}"
        detail = f"{_text(data.get('start'))} – {_text(data.get('end'))}, {_text(data.get('status'))}"
        if data.get("note"):
            detail += f": {_text(data.get('note'))}"
        return HistoryEntry(record=record, title=title, detail=detail)
    if record.kind == ImportedRecord.Kind.PRINT:
        what = " ".join(part for part in (_text(data.get("design")), _text(data.get("path"))) if part)
        title = f"{what or 'A print'} on {_text(data.get('machine'))} at {_text(data.get('lab'))}"
        detail = f"{_text(data.get('result'))}, ended {_text(data.get('ended'))}"
        return HistoryEntry(record=record, title=title, detail=detail)
    # Proposals and comments (the designs part): a title or the start of the text.
    title = _text(data.get("title") or data.get("design") or record.get_kind_display())
    return HistoryEntry(record=record, title=title, detail=_text(data.get("body") or data.get("text"), 500))


def imported_records_of(account: User) -> QuerySet[ImportedRecord]:
    return ImportedRecord.objects.filter(account=account)


def records_brought(person: User) -> QuerySet[ImportedRecord]:
    """What anyone may see on a profile: records checked and claimed, nothing else
    (the rest the account's owner sees on their own settings page)."""
    return ImportedRecord.objects.filter(
        account=person,
        kind=ImportedRecord.Kind.CREDENTIAL,
        verification="verified",
        claimed_at__isnull=False,
    ).order_by("-claimed_at", "pk")
