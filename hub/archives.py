"""Account archives: everything a person has on a hub, in one file another hub imports
(docs/portability.md, "Account archives"; the manifest's JSON Schema is
docs/account-archive.schema.json).

The file is a ZIP. `manifest.json` lists every other member with its size and SHA-256
and is signed by the exporting hub (a Data Integrity proof, eddsa-jcs-2022, as signed
records are: hub.records). Each feature app writes and reads its own part under its own
folder (`designs/`, `machines/`), registered with `register_archive_part`; the hub writes
`account.json` and `records/credentials.json` (the person's signed records) itself.

Reading an archive checks everything before anything is imported: members are plain
relative paths, none is missing from or absent in the manifest, every hash matches, the
manifest is signed by a key this hub may trust for its issuer (never a key shipped in
the archive). An archive from a hub this one cannot check is imported as content
(designs) with its records marked unverified; a forged or missing signature, or any
mismatch, refuses the archive naming what failed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
import queue
import secrets
import shutil
import stat
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub import records
from hub.exceptions import ValidationError
from hub.models import AccountArchive, ArchiveImport, ImportedObject, ImportedRecord, User

logger = logging.getLogger(__name__)

FORMAT = "fabhub-account-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_MEMBERS = 500_000
CHUNK = 1024 * 1024


class ArchiveRefused(ValidationError):
    """The archive cannot be imported; the message names the file or field that failed."""


# -- parts --------------------------------------------------------------------------------


@dataclass
class ExportContext:
    user: User
    writer: ArchiveWriter
    progress: Callable[[str], None]


@dataclass
class ImportContext:
    account: User
    reader: ArchiveReader
    archive_import: ArchiveImport
    progress: Callable[[str], None]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def source_hub(self) -> str:
        return self.reader.source_hub

    def count(self, name: str, by: int = 1) -> None:
        counts = self.report.setdefault("counts", {})
        counts[name] = counts.get(name, 0) + by

    def note(self, message: str) -> None:
        self.report.setdefault("notes", []).append(message)

    def imported(self, kind: str, original_id: str) -> str | None:
        """The local id of what an earlier import made of `original_id`, if any."""
        row = ImportedObject.objects.filter(
            account=self.account, source_hub=self.source_hub, kind=kind, original_id=str(original_id)
        ).first()
        return row.local_id if row else None

    def remember(self, kind: str, original_id: str, local_id: str) -> None:
        ImportedObject.objects.get_or_create(
            account=self.account,
            source_hub=self.source_hub,
            kind=kind,
            original_id=str(original_id),
            defaults={"local_id": str(local_id)},
        )

    def keep_history(self, kind: str, original_id: str, data: dict, *, verification: str = "") -> bool:
        """Keep a read-only record of what the person did on the source hub; False when an
        earlier import kept it already."""
        try:
            with transaction.atomic():
                ImportedRecord.objects.create(
                    account=self.account,
                    archive_import=self.archive_import,
                    source_hub=self.source_hub,
                    kind=kind,
                    original_id=str(original_id),
                    data=data,
                    verification=verification,
                )
        except IntegrityError:
            return False
        return True


@dataclass(frozen=True)
class ArchivePart:
    """A feature app's share of an archive, under the folder `name/`."""

    name: str
    export: Callable[[ExportContext], None]
    import_: Callable[[ImportContext], None]


_parts: dict[str, ArchivePart] = {}


def register_archive_part(part: ArchivePart) -> None:
    _parts[part.name] = part


def archive_parts() -> list[ArchivePart]:
    return list(_parts.values())


# -- writing ------------------------------------------------------------------------------


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _HashingFile:
    """The archive's file as the ZIP writer sees it: every byte written is hashed on its
    way to disk, so the finished archive's SHA-256 needs no second read. It cannot seek,
    so the writer never goes back to rewrite a header (it puts each member's sizes and
    CRC after its data instead), and the bytes hashed are the bytes on disk.

    The hashing runs on a thread of its own, a few chunks behind the writes (hashlib lets
    go of the GIL on large buffers): the writer's thread already hashes each member and
    computes its CRC, and a third pass over every byte made the export 1.2x slower."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self.sha256 = hashlib.sha256()
        self._position = 0
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._hasher = threading.Thread(target=self._hash, name="archive-sha256", daemon=True)
        self._hasher.start()

    def _hash(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self.sha256.update(chunk)

    def write(self, data: bytes) -> int:
        data = bytes(data)  # immutable: it is hashed after this returns
        self._chunks.put(data)
        self._position += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self._position

    def seek(self, *args: Any) -> int:
        raise OSError("the archive is written in one pass")

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Close the file; `sha256` is complete once this returns."""
        if self._hasher.is_alive():
            self._chunks.put(None)
            self._hasher.join()
        self._file.close()


class ArchiveWriter:
    """Members written into the ZIP as they come, hashed on the way; the signed manifest
    last. Large binary members (bundles, LFS objects) are stored, not deflated. The whole
    file is hashed as it is written too (`sha256`, once `finish` returns)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _HashingFile(path)
        self._zip = zipfile.ZipFile(self._file, "w", allowZip64=True)
        self.files: list[dict[str, Any]] = []
        self._names: set[str] = set()

    def _member(self, name: str) -> str:
        if not plain_member_name(name) or name == MANIFEST or name in self._names:
            raise ValueError(f"not a member name an archive may hold: {name!r}")
        self._names.add(name)
        return name

    def add_file(self, name: str, source: Path, *, compress: bool = False) -> None:
        with source.open("rb") as handle:
            self.add_stream(name, handle, compress=compress)

    def add_stream(self, name: str, stream: Readable, *, compress: bool = False) -> None:
        digest, size = hashlib.sha256(), 0
        info = zipfile.ZipInfo(self._member(name), date_time=(2000, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with self._zip.open(info, "w", force_zip64=True) as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        self.files.append({"path": name, "size": size, "sha256": digest.hexdigest()})

    def add_bytes(self, name: str, data: bytes, *, compress: bool = True) -> None:
        self.add_stream(name, io.BytesIO(data), compress=compress)

    def add_json(self, name: str, value: Any) -> None:
        self.add_bytes(name, json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode())

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Sign and write the manifest; close the file. Returns the manifest."""
        document = {**manifest, "files": sorted(self.files, key=lambda f: f["path"])}
        signed = records.document_sign(document)
        info = zipfile.ZipInfo(MANIFEST, date_time=(2000, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        self._zip.writestr(info, json.dumps(signed, ensure_ascii=False, indent=1, sort_keys=True))
        self._zip.close()
        self._file.close()
        return signed

    @property
    def sha256(self) -> str:
        return self._file.sha256.hexdigest()

    def abort(self) -> None:
        self._zip.close()
        self._file.close()
        self.path.unlink(missing_ok=True)


def plain_member_name(name: str) -> bool:
    """A ZIP member name that extracts nowhere but where it says: relative, '/'-separated,
    no '..', no empty or '.' segment, no backslash, drive letter or control character."""
    if not name or len(name) > 1024 or name.startswith("/") or "\\" in name or ":" in name:
        return False
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return False
    parts = name.split("/")
    return all(part not in ("", ".", "..") for part in parts) and posixpath.normpath(name) == name


# -- reading ------------------------------------------------------------------------------


def _depth(value: Any, limit: int) -> int:
    """How deeply `value` nests, without recursion (a hostile file may nest 10⁶ deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_json(raw: bytes, *, name: str) -> Any:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ArchiveRefused(f"{name} is not JSON.", file=name) from None
    except RecursionError:
        raise ArchiveRefused(f"{name} nests deeper than {MAX_JSON_DEPTH} levels.", file=name) from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ArchiveRefused(f"{name} nests deeper than {MAX_JSON_DEPTH} levels.", file=name)
    return value


class ArchiveReader:
    """An archive whose every member was checked against its manifest (`open_checked`)."""

    def __init__(
        self, path: Path, archive: zipfile.ZipFile, manifest: dict[str, Any], signature: str
    ) -> None:
        self.path = path
        self._zip = archive
        self.manifest = manifest
        self.signature = signature  # "verified" or "unverified"
        self.sizes = {entry["path"]: entry["size"] for entry in manifest["files"]}

    @property
    def verified(self) -> bool:
        return self.signature == "verified"

    @property
    def source_hub(self) -> str:
        return str(self.manifest["hub"])

    @property
    def source_account(self) -> str:
        return str(self.manifest["account"]["url"])

    def names(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self.sizes if name.startswith(prefix))

    def open(self, name: str) -> IO[bytes]:
        if name not in self.sizes:
            raise ArchiveRefused(f"{name} is not in the archive.", file=name)
        return self._zip.open(name)

    def read_json(self, name: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
        if self.sizes.get(name, 0) > max_bytes:
            raise ArchiveRefused(f"{name} is larger than {max_bytes // (1024 * 1024)} MB.", file=name)
        with self.open(name) as handle:
            return parse_json(handle.read(max_bytes + 1), name=name)

    def extract(self, name: str, target: Path) -> None:
        with self.open(name) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)

    def close(self) -> None:
        self._zip.close()


def open_checked(path: Path, *, fetch: records.Fetch = records.fetch_json) -> ArchiveReader:
    """Open an archive for import, or raise ArchiveRefused naming what failed."""
    limit = settings.FABHUB_MAX_ARCHIVE_BYTES
    size = path.stat().st_size
    if size > limit:
        raise ArchiveRefused(
            f"The archive is {size / 1024**3:.1f} GiB; this hub imports archives of at most {limit / 1024**3:.1f} GiB."
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise ArchiveRefused("The file is not a ZIP archive.") from None
    try:
        return _checked(path, archive, fetch=fetch)
    except BaseException:
        archive.close()
        raise


def _checked(path: Path, archive: zipfile.ZipFile, *, fetch: records.Fetch) -> ArchiveReader:
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise ArchiveRefused(f"The archive holds more than {MAX_MEMBERS:,} files.")
    names: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        if not plain_member_name(info.filename.rstrip("/")) or info.filename.endswith("/"):
            raise ArchiveRefused(
                f"{info.filename[:200]!r} is not a plain file path inside the archive.", file=info.filename
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveRefused(f"{info.filename} is a symbolic link.", file=info.filename)
        if info.filename in names:
            raise ArchiveRefused(f"{info.filename} is in the archive twice.", file=info.filename)
        names[info.filename] = info
    if MANIFEST not in names:
        raise ArchiveRefused(
            "The archive has no manifest.json: it is not a fabhub account archive.", file=MANIFEST
        )
    if names[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        raise ArchiveRefused("manifest.json is too large.", file=MANIFEST)
    manifest = parse_json(archive.read(MANIFEST), name=MANIFEST)
    _check_manifest_shape(manifest)
    signature = _check_signature(manifest, fetch=fetch)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    for name in names:
        if name != MANIFEST and name not in listed:
            raise ArchiveRefused(f"{name} is in the archive but not in its manifest.", file=name)
    for name, entry in listed.items():
        if name not in names:
            raise ArchiveRefused(f"{name} is listed in the manifest but missing from the archive.", file=name)
        if names[name].file_size != entry["size"]:
            raise ArchiveRefused(f"{name} is not the size the manifest gives.", file=name)
        digest = hashlib.sha256()
        with archive.open(name) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != entry["sha256"]:
            raise ArchiveRefused(
                f"{name} does not match the SHA-256 in the manifest: it was changed.", file=name
            )
    return ArchiveReader(path, archive, manifest, signature)


def _check_manifest_shape(manifest: Any) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveRefused("manifest.json is not a fabhub account archive manifest.", file=MANIFEST)
    if manifest.get("version") != FORMAT_VERSION:
        raise ArchiveRefused(
            f"This hub reads archives of version {FORMAT_VERSION}; this one is {manifest.get('version')!r}.",
            file=MANIFEST,
        )
    hub, account = manifest.get("hub"), manifest.get("account")
    if not isinstance(hub, str) or not hub.startswith(("http://", "https://")) or len(hub) > 500:
        raise ArchiveRefused("manifest.json: hub must be the exporting hub's address.", file=MANIFEST)
    if (
        not isinstance(account, dict)
        or not isinstance(account.get("url"), str)
        or not isinstance(account.get("username"), str)
    ):
        raise ArchiveRefused("manifest.json: account must name the person's account.", file=MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ArchiveRefused("manifest.json: files must be a list.", file=MANIFEST)
    for entry in files:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("path"), str)
            or not plain_member_name(entry["path"])
            or entry["path"] == MANIFEST
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
            or not isinstance(entry.get("sha256"), str)
            or len(entry["sha256"]) != 64
        ):
            raise ArchiveRefused(
                f"manifest.json: a file entry is malformed: {str(entry)[:200]}", file=MANIFEST
            )


def _check_signature(manifest: dict, *, fetch: records.Fetch) -> str:
    """'verified', or 'unverified' for a hub this one has no way to check (no trust-list
    entry, not did:web, offline); a missing signature, or one that does not hold against
    the keys its hub is known to have, refuses the archive."""
    if not isinstance(manifest.get("proof"), dict):
        raise ArchiveRefused("manifest.json is not signed.", file=MANIFEST)
    issuer = records.issuer_of(manifest)
    if not issuer:
        raise ArchiveRefused("manifest.json does not name the hub that signed it.", file=MANIFEST)
    online = settings.FABHUB_ARCHIVE_ONLINE_CHECKS
    try:
        _, where = records.issuer_keys(issuer, online=online, fetch=fetch)
    except (LookupError, ValueError, OSError):
        where = ""
    if not where:
        return "unverified"
    report = records.Verification()
    if not records.verify_signature(manifest, online=online, fetch=fetch, report=report):
        detail = report.checks[-1].detail if report.checks else report.status
        raise ArchiveRefused(f"manifest.json's signature does not hold: {detail}", file=MANIFEST)
    if manifest["hub"].rstrip("/") + "/" != records.issuer_home(issuer):
        raise ArchiveRefused("manifest.json names another hub than the one that signed it.", file=MANIFEST)
    return "verified"


# -- the jobs ------------------------------------------------------------------------------


def archives_dir() -> Path:
    folder = Path(settings.DATA_DIR) / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def archive_path(archive: AccountArchive) -> Path:
    return archives_dir() / f"{archive.pk}.zip"


def import_path(archive_import: ArchiveImport) -> Path:
    folder = Path(settings.DATA_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{archive_import.pk}.zip"


def _set(model: type[AccountArchive] | type[ArchiveImport], pk: Any, **fields: Any) -> None:
    model.objects.filter(pk=pk).update(**fields)


def account_document(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "url": records.account_url(user.username),
        "name": user.get_full_name(),
        "joined": user.date_joined.isoformat(),
    }


def archive_build(*, archive_id: Any) -> bool:
    """Build an archive (a background task): every registered part, then the person's
    signed records and the signed manifest."""
    archive = AccountArchive.objects.select_related("owner").filter(pk=archive_id).first()
    if archive is None or archive.status not in (
        AccountArchive.Status.QUEUED,
        AccountArchive.Status.BUILDING,
    ):
        return False
    user = archive.owner
    final = archive_path(archive)
    partial = final.with_suffix(".part")
    writer = ArchiveWriter(partial)
    parts = archive_parts()
    steps = len(parts) + 2

    def progress_for(step: int) -> Callable[[str], None]:
        def progress(stage: str) -> None:
            _set(AccountArchive, archive.pk, stage=stage[:200], progress=min(99, int(100 * step / steps)))

        return progress

    _set(AccountArchive, archive.pk, status=AccountArchive.Status.BUILDING, progress=1, stage="Starting")
    try:
        writer.add_json("account.json", account_document(user))
        for step, part in enumerate(parts, start=1):
            part.export(ExportContext(user=user, writer=writer, progress=progress_for(step)))
        progress_for(steps - 1)("Signed records")
        credentials = [c.document for c in user.credentials.all().order_by("issued_at")]
        writer.add_json("records/credentials.json", credentials)
        writer.finish(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "hub": records.hub_root(),
                "created": timezone.now().isoformat(),
                "account": account_document(user),
                "parts": sorted(["account", "records", *(part.name for part in parts)]),
            }
        )
    except Exception as exc:
        writer.abort()
        # A failed archive is kept as long as a ready one would be, to say why, then goes.
        _set(
            AccountArchive,
            archive.pk,
            status=AccountArchive.Status.FAILED,
            error=str(exc)[:2000],
            finished_at=timezone.now(),
            expires_at=timezone.now() + timedelta(days=settings.FABHUB_ARCHIVE_DAYS),
        )
        raise
    partial.rename(final)
    now = timezone.now()
    _set(
        AccountArchive,
        archive.pk,
        status=AccountArchive.Status.READY,
        progress=100,
        stage="Ready",
        size=final.stat().st_size,
        sha256=writer.sha256,
        finished_at=now,
        expires_at=now + timedelta(days=settings.FABHUB_ARCHIVE_DAYS),
    )
    return True


def archives_expire() -> int:
    """Delete archives past their time (the ticker runs this)."""
    expired = AccountArchive.objects.filter(expires_at__lt=timezone.now())
    count = 0
    for archive in expired:
        archive_path(archive).unlink(missing_ok=True)
        archive.delete()
        count += 1
    return count


def archive_import_run(*, import_id: Any, fetch: records.Fetch = records.fetch_json) -> bool:
    """Check an uploaded archive whole, then import it part by part (a background task).
    Each part imports what it can all-or-nothing per object; a refused archive imports
    nothing."""
    job = ArchiveImport.objects.select_related("account").filter(pk=import_id).first()
    if job is None or job.status not in (ArchiveImport.Status.QUEUED, ArchiveImport.Status.IMPORTING):
        return False
    path = import_path(job)
    if not path.exists():
        # A run again (a retry, a task delivered twice) after the file went: it is deleted
        # only once an outcome is saved, so another run saved one or the file was lost.
        # Either way there is nothing to import from; never left "importing".
        ArchiveImport.objects.filter(pk=job.pk, status=job.status).update(
            status=ArchiveImport.Status.FAILED,
            error="The import was interrupted on this hub and its uploaded archive is gone; "
            "upload it again to finish it.",
            stage="Interrupted",
            finished_at=timezone.now(),
        )
        return False
    _set(
        ArchiveImport, job.pk, status=ArchiveImport.Status.IMPORTING, progress=1, stage="Checking the archive"
    )
    try:
        reader = open_checked(path, fetch=fetch)
    except ArchiveRefused as exc:
        _set(
            ArchiveImport,
            job.pk,
            status=ArchiveImport.Status.FAILED,
            error=exc.message,
            stage="Refused",
            finished_at=timezone.now(),
        )
        path.unlink(missing_ok=True)
        return False
    job.source_hub, job.source_account, job.signature = (
        reader.source_hub,
        reader.source_account,
        reader.signature,
    )
    _set(
        ArchiveImport,
        job.pk,
        source_hub=job.source_hub,
        source_account=job.source_account,
        signature=job.signature,
        progress=5,
        stage="Importing",
    )
    parts = [part for part in archive_parts() if part.name in reader.manifest.get("parts", [])]
    context = ImportContext(
        account=job.account, reader=reader, archive_import=job, progress=lambda stage: None, report={}
    )
    try:
        for step, part in enumerate(parts, start=1):

            def progress(stage: str, step: int = step) -> None:
                _set(
                    ArchiveImport,
                    job.pk,
                    stage=stage[:200],
                    progress=min(95, 5 + int(90 * step / (len(parts) + 1))),
                )

            context.progress = progress
            part.import_(context)
        _import_credentials(context)
    except ArchiveRefused as exc:
        _set(
            ArchiveImport,
            job.pk,
            status=ArchiveImport.Status.FAILED,
            error=exc.message
            + (
                " What was imported before this was found is listed below."
                if context.report.get("counts")
                else ""
            ),
            report=context.report,
            finished_at=timezone.now(),
        )
        path.unlink(missing_ok=True)  # only once the outcome is saved: a re-run needs it
        return False
    except Exception as exc:
        # Never left "importing" for good: the person sees that it failed, and why in short.
        logger.exception("import %s failed", job.pk)
        _set(
            ArchiveImport,
            job.pk,
            status=ArchiveImport.Status.FAILED,
            error=f"The import failed on this hub ({type(exc).__name__}); nothing more was imported.",
            report=context.report,
            finished_at=timezone.now(),
        )
        path.unlink(missing_ok=True)  # only once the outcome is saved: a re-run needs it
        return False
    finally:
        reader.close()
    _set(
        ArchiveImport,
        job.pk,
        status=ArchiveImport.Status.DONE,
        progress=100,
        stage="Done",
        report=context.report,
        finished_at=timezone.now(),
    )
    path.unlink(missing_ok=True)
    return True


def _import_credentials(context: ImportContext) -> None:
    """The person's signed records, kept with what verifying them here says; an archive
    this hub cannot check leaves them unverified whatever they claim."""
    if "records/credentials.json" not in context.reader.sizes:
        return
    documents = context.reader.read_json("records/credentials.json")
    if not isinstance(documents, list):
        raise ArchiveRefused(
            "records/credentials.json must be a list of records.", file="records/credentials.json"
        )
    context.progress("Signed records")
    for document in documents:
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            context.note("A record without an id was left out.")
            continue
        report = records.credential_verify(document, online=False)
        status = report.status if context.reader.verified else "unverified"
        if report.subject != context.reader.source_account:
            status = "not-this-account"
        if context.keep_history(
            ImportedRecord.Kind.CREDENTIAL, document["id"], document, verification=status
        ):
            context.count("records")


# -- claiming imported records --------------------------------------------------------------

CLAIM_TYPE = "FabhubAccountControl"
CLAIM_LIFETIME = timedelta(minutes=30)


def claim_challenge(*, archive_import: ArchiveImport) -> str:
    """A fresh challenge for the source hub to sign: the person proves there that they
    control the account the imported records name."""
    challenge = secrets.token_urlsafe(32)
    _set(ArchiveImport, archive_import.pk, claim_challenge=challenge, claim_challenge_at=timezone.now())
    archive_import.claim_challenge, archive_import.claim_challenge_at = challenge, timezone.now()
    return challenge


def account_control_proof(*, user: User, challenge: str, audience: str) -> dict[str, Any]:
    """Signed by this hub: "`user` here authorises the account `audience` (on another hub)
    to claim their records", bound to that hub's `challenge` and valid for a short time."""
    if (
        not 16 <= len(challenge) <= 128
        or not audience.startswith(("http://", "https://"))
        or len(audience) > 500
    ):
        raise ValidationError("Give the challenge and the address of the account on the other hub.")
    now = timezone.now()
    return records.document_sign(
        {
            "@context": [records.VC_CONTEXT],
            "type": ["VerifiableCredential", CLAIM_TYPE],
            "validFrom": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "validUntil": (now + CLAIM_LIFETIME).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "credentialSubject": {
                "id": records.account_url(user.username),
                "authorises": audience,
                "challenge": challenge,
            },
        }
    )


def records_claim(
    *, archive_import: ArchiveImport, proof: Any, fetch: records.Fetch = records.fetch_json
) -> int:
    """Claim an import's records for its account with a proof the source hub signed;
    returns how many records were claimed. Refused (ValidationError) unless the proof is
    signed by the archive's hub with a key this hub trusts, names the archive's account,
    authorises this account, and answers this import's current challenge in time."""
    if archive_import.status != ArchiveImport.Status.DONE:
        raise ValidationError("The import is not finished.")
    if archive_import.signature != "verified":
        raise ValidationError("This archive's hub cannot be checked from here: its records stay unverified.")
    if not archive_import.claim_challenge or archive_import.claim_challenge_at is None:
        raise ValidationError("Ask for a challenge first.")
    if timezone.now() - archive_import.claim_challenge_at > CLAIM_LIFETIME:
        raise ValidationError("The challenge has expired; ask for a new one.")
    report = records.credential_verify(proof, online=settings.FABHUB_ARCHIVE_ONLINE_CHECKS, fetch=fetch)
    if not report.verified and report.status != "status-unavailable":
        raise ValidationError(
            f"The proof does not hold ({report.status}): "
            + "; ".join(check.detail for check in report.checks if not check.ok)
        )
    if records.issuer_home(report.issuer) != archive_import.source_hub.rstrip("/") + "/":
        raise ValidationError("The proof is signed by another hub than the archive's.")
    subject = proof.get("credentialSubject", {}) if isinstance(proof, dict) else {}
    if CLAIM_TYPE not in (proof.get("type") or []):
        raise ValidationError("This is not a proof of account control.")
    if subject.get("id") != archive_import.source_account:
        raise ValidationError("The proof is for another account than the archive's.")
    if subject.get("authorises") != records.account_url(archive_import.account.username):
        raise ValidationError("The proof authorises another account than yours.")
    if subject.get("challenge") != archive_import.claim_challenge:
        raise ValidationError("The proof answers another challenge.")
    now = timezone.now()
    with transaction.atomic():
        claimed = ImportedRecord.objects.filter(
            account=archive_import.account,
            source_hub=archive_import.source_hub,
            kind=ImportedRecord.Kind.CREDENTIAL,
            verification="verified",
            claimed_at__isnull=True,
        ).update(claimed_at=now)
        ArchiveImport.objects.filter(pk=archive_import.pk).update(claimed_at=now, claim_challenge="")
    return claimed
