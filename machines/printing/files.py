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

    New content is written to a temporary file on the same file system and renamed into
    place, so a crash never leaves a half file under a sha. Content stored already is
    left as it is when the stored file's bytes still hash to its sha (bytes that arrive
    whole in the first chunk are then not copied at all); a stored file that does not
    (cut short or damaged by a crash, bit rot) is replaced by the new copy.
    """
    first = source.read(CHUNK_BYTES)
    rest = source.read(CHUNK_BYTES) if first else b""
    if not rest:
        # All of it in hand (an upload small enough to be read at submission, say): when
        # these bytes are stored already, no temporary copy is made and removed (~0.3 ms
        # of CPU of a resubmission, most of it creating the file).
        sha = hashlib.sha256(first).hexdigest()
        if _stored(gcode_path(sha), sha=sha, size=len(first)):
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
        if _stored(target, sha=sha, size=size):
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


def _stored(target: Path, *, sha: str, size: int) -> bool:
    """Whether `target` holds the `size` bytes whose sha256 is `sha`. Its size alone is not
    enough: a crash can leave a file of the right size with stale blocks, and only a new
    copy renamed over it repairs it. Hashing it costs ~40 us for 66 kB, far less than
    writing a copy out (ext4 does so at once on a rename over a file: auto_da_alloc)."""
    try:
        with target.open("rb") as stored:
            if os.fstat(stored.fileno()).st_size != size:
                return False
            digest = hashlib.sha256()
            while chunk := stored.read(CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == sha
