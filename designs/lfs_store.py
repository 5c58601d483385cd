"""Git LFS objects, stored by content (sha256 "oid") behind one small interface.

Every caller goes through `lfs_store()`, which returns an `ObjectStore`; today that is
`LocalObjectStore` under `<FABHUB_DATA_DIR>/lfs`, and an object store (S3 and the like)
can replace it at scale by implementing the same six methods. The store knows nothing
about designs or permissions: which design may serve which oid is in the database
(`designs.models.LfsObject`, `DesignLfsObject`).

Objects are immutable and named by their hash, so writers never clash: each upload
streams into a temporary file of its own on the same file system while it is hashed,
and only a complete, verified file is renamed into place (an atomic step). A refused
or interrupted upload leaves nothing behind.

Only `lfs_store()` reads settings.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, NamedTuple, Protocol, TypeGuard

OID_RE = re.compile(r"[0-9a-f]{64}")
CHUNK_BYTES = 1024 * 1024
POINTER_VERSION = b"https://git-lfs.github.com/spec/v1"
# Pointers written by git-lfs before 1.0 (still read by git-lfs today).
OLD_POINTER_VERSION = b"https://hawser.github.com/spec/v1"
# The spec caps pointer files below 1024 bytes; anything larger is content.
MAX_POINTER_BYTES = 1024
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"


class StoreError(Exception):
    """An object was refused (bad oid, wrong size or hash) or is missing."""


class Pointer(NamedTuple):
    oid: str
    size: int


class ObjectStore(Protocol):
    def exists(self, oid: str) -> bool: ...

    def size(self, oid: str) -> int | None:
        """The object's size in bytes, or None if the store does not have it."""

    def open(self, oid: str) -> IO[bytes]:
        """The object's content as a binary file; the caller closes it."""

    def save(self, oid: str, size: int, stream: IO[bytes]) -> None:
        """Store `stream` as `oid`, or raise StoreError if it is not `size` bytes hashing to `oid`."""

    def add(self, stream: IO[bytes], *, max_size: int) -> Pointer:
        """Store `stream` under the oid it hashes to (for uploads whose oid nobody told us)."""

    def delete(self, oid: str) -> None:
        """Remove the object if the store has it (the caller knows nothing refers to it)."""


def valid_oid(oid: object) -> TypeGuard[str]:
    return isinstance(oid, str) and OID_RE.fullmatch(oid) is not None


class LocalObjectStore:
    """Objects as read-only files at `<root>/<oid[0:2]>/<oid[2:4]>/<oid>`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, oid: str) -> Path:
        # The only way from an oid to the disk: nothing unchecked becomes a file name.
        if not valid_oid(oid):
            raise StoreError(f"{str(oid)[:80]!r} is not a sha256 object id (64 lowercase hex digits).")
        return self.root / oid[0:2] / oid[2:4] / oid

    def exists(self, oid: str) -> bool:
        return self.path(oid).is_file()

    def size(self, oid: str) -> int | None:
        try:
            return self.path(oid).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, oid: str) -> IO[bytes]:
        try:
            return self.path(oid).open("rb")
        except FileNotFoundError:
            raise StoreError(f"The store has no object {oid}.") from None

    def save(self, oid: str, size: int, stream: IO[bytes]) -> None:
        target = self.path(oid)
        if not isinstance(size, int) or size < 0:
            raise StoreError(f"{size!r} is not a valid object size.")
        temporary, digest, received = self._receive(stream, limit=size)
        try:
            if received != size:
                raise StoreError(
                    f"Object {oid} should be {size:,} bytes; "
                    + ("more arrived." if received > size else f"{received:,} arrived.")
                )
            if digest != oid:
                raise StoreError(f"The content does not match object {oid}: its sha256 is {digest}.")
            self._publish(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def add(self, stream: IO[bytes], *, max_size: int) -> Pointer:
        temporary, digest, received = self._receive(stream, limit=max_size)
        try:
            if received > max_size:
                raise StoreError(f"The object is larger than the limit of {max_size:,} bytes.")
            self._publish(temporary, self.path(digest))
        finally:
            temporary.unlink(missing_ok=True)
        return Pointer(digest, received)

    def delete(self, oid: str) -> None:
        self.path(oid).unlink(missing_ok=True)

    def _receive(self, stream: IO[bytes], *, limit: int) -> tuple[Path, str, int]:
        """Copy at most `limit` + 1 bytes of `stream` to a new temporary file while hashing.

        Reading one byte past the limit is how an oversized stream is noticed without
        swallowing all of it.
        """
        incoming = self.root / "tmp"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming, prefix="upload-")
        temporary = Path(name)
        digest = hashlib.sha256()
        received = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while received <= limit:
                    chunk = stream.read(min(CHUNK_BYTES, limit + 1 - received))
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                out.flush()
                # The rename below must never publish a file whose bytes are not on disk yet.
                os.fsync(out.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary, digest.hexdigest(), received

    def _publish(self, temporary: Path, target: Path) -> None:
        if target.is_file():
            return  # content-addressed: the object already there is the same bytes
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.chmod(0o444)
        os.replace(temporary, target)


def lfs_store() -> ObjectStore:
    """The configured store (read when called, so tests can point DATA_DIR elsewhere)."""
    from django.conf import settings  # here: the hook never imports Django (~0.15 s per push)

    return LocalObjectStore(Path(settings.DATA_DIR) / "lfs")


def pointer_text(oid: str, size: int) -> bytes:
    """A pointer file as git-lfs writes it."""
    return b"version %s\noid sha256:%s\nsize %d\n" % (POINTER_VERSION, oid.encode(), size)


def resolve_pointer(data: bytes) -> Pointer | None:
    """(oid, size) if `data` is a Git LFS pointer file, else None (it is content)."""
    if len(data) >= MAX_POINTER_BYTES or not data.endswith(b"\n"):
        return None
    fields: dict[bytes, bytes] = {}
    for line in data[:-1].split(b"\n"):
        key, space, value = line.partition(b" ")
        if not space or not key or key in fields:
            return None
        fields[key] = value
    if fields.get(b"version") not in (POINTER_VERSION, OLD_POINTER_VERSION):
        return None
    oid_field = fields.get(b"oid", b"")
    size_field = fields.get(b"size", b"")
    if not oid_field.startswith(b"sha256:") or not size_field.isdigit():
        return None
    oid = oid_field[len(b"sha256:") :].decode("ascii", "replace")
    if not valid_oid(oid):
        return None
    return Pointer(oid, int(size_field))
