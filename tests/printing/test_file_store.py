"""The print queue's file store keeps each content once, under its sha256."""

from __future__ import annotations

import hashlib
import io

import pytest

from machines.printing import files
from machines.printing.files import gcode_path, store_file


def test_storing_the_same_bytes_again_leaves_the_stored_file_as_it_is(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    sha, size = store_file(io.BytesIO(b"G28\nG1 X10\n"))
    before = gcode_path(sha).stat()
    assert store_file(io.BytesIO(b"G28\nG1 X10\n")) == (sha, size)
    after = gcode_path(sha).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not any((tmp_path / "print-files" / "tmp").iterdir())  # no copy left behind


def test_a_stored_file_cut_short_is_stored_anew(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    sha, size = store_file(io.BytesIO(b"G28\nG1 X10\n"))
    gcode_path(sha).write_bytes(b"")  # as a crash before the data reached the disk leaves it
    assert store_file(io.BytesIO(b"G28\nG1 X10\n")) == (sha, size)
    assert gcode_path(sha).read_bytes() == b"G28\nG1 X10\n"


def test_bytes_stored_already_make_no_temporary_copy(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path
    sha, size = store_file(io.BytesIO(b"G28\nG1 X10\n"))
    made = []
    real_mkstemp = files.tempfile.mkstemp
    monkeypatch.setattr(files.tempfile, "mkstemp", lambda **kw: made.append(kw) or real_mkstemp(**kw))
    assert store_file(io.BytesIO(b"G28\nG1 X10\n")) == (sha, size)
    assert made == []
    assert store_file(io.BytesIO(b"G28\nG1 X20\n"))[1] == size  # new bytes are copied as before
    assert len(made) == 1


@pytest.mark.parametrize("chunk_bytes", [files.CHUNK_BYTES, 8])  # whole in one chunk; copied while hashed
def test_a_stored_file_of_the_right_size_but_other_bytes_is_stored_anew(
    settings, tmp_path, monkeypatch, chunk_bytes
):
    settings.DATA_DIR = tmp_path
    monkeypatch.setattr(files, "CHUNK_BYTES", chunk_bytes)
    content = b"G28\nG1 X10 Y10 E1\n"
    sha, size = store_file(io.BytesIO(content))
    # Stale blocks after a crash (data=writeback), or bit rot: the size is right, the bytes not.
    gcode_path(sha).write_bytes(b"\0" * size)
    assert store_file(io.BytesIO(content)) == (sha, size)
    assert gcode_path(sha).read_bytes() == content
    assert not any((tmp_path / "print-files" / "tmp").iterdir())


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 16, 17, 40])
def test_a_source_of_many_chunks_is_stored_whole(settings, tmp_path, monkeypatch, length):
    settings.DATA_DIR = tmp_path
    monkeypatch.setattr(files, "CHUNK_BYTES", 8)
    content = bytes(range(65, 65 + length))
    for _ in range(2):  # stored, then found stored
        sha, size = store_file(io.BytesIO(content))
        assert (sha, size) == (hashlib.sha256(content).hexdigest(), length)
        assert gcode_path(sha).read_bytes() == content
