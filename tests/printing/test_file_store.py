"""The print queue's file store keeps each content once, under its sha256."""

from __future__ import annotations

import io

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
