"""The print queue's file store: G-code and uploaded files kept by their sha256, so the
same content is stored once and a name always means the same bytes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from django.conf import settings

CHUNK_BYTES = 1024 * 1024


def gcode_path(sha256: str) -> Path:
    """Where the G-code (or uploaded file) with this sha256 is kept: content-addressed."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256")
    return Path(settings.DATA_DIR) / "print-files" / sha256[:2] / f"{sha256}.gcode"


def store_file(source: IO[bytes]) -> tuple[str, int]:
    """Copy `source` into the store while hashing it; return (sha256, size).

    Written to a temporary file on the same file system and renamed into place, so a
    crash never leaves a half file under a sha; the same content twice is stored once.
    """
    first = source.read(CHUNK_BYTES)
    rest = source.read(CHUNK_BYTES) if first else b""
    if not rest:
        # All of it in hand (an upload small enough to be read at submission, say): when
        # these bytes are stored already, no temporary copy is made and removed (~0.3 ms
        # of CPU of a resubmission, most of it creating the file).
        sha = hashlib.sha256(first).hexdigest()
        if _stored(gcode_path(sha), len(first)):
            return sha, len(first)
    tmp_dir = Path(settings.DATA_DIR) / "print-files" / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(source, first, rest):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        sha = digest.hexdigest()
        target = gcode_path(sha)
        if _stored(target, size):
            # These bytes are stored already. Renaming over them would make ext4 write
            # this copy out at once (auto_da_alloc): ~0.5 ms of a resubmission, for nothing.
            Path(tmp_name).unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return sha, size


def _chunks(source: IO[bytes], first: bytes, second: bytes) -> Iterator[bytes]:
    """The two chunks read of `source` already, then the rest of it."""
    yield from (chunk for chunk in (first, second) if chunk)
    if second:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk


def _stored(target: Path, size: int) -> bool:
    """Whether `target` holds a stored file of `size` bytes. A file cut short (a crash
    before its data reached the disk) is stored anew."""
    try:
        return target.stat().st_size == size
    except FileNotFoundError:
        return False
