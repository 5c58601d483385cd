"""git http-backend failing half-way: the client's answer is cut short, and the log says why."""

from __future__ import annotations

import io
import logging
import subprocess

from designs.git import http_backend


def _git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _pkt(line: str) -> bytes:
    return b"%04x%s" % (len(line) + 4, line.encode())


def _fetch(repo, want: str) -> bytes:
    body = _pkt(f"want {want}\n") + b"0000" + _pkt("done\n")
    response = http_backend(
        repo,
        method="POST",
        path_info="/git-upload-pack",
        query="",
        request_headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Length": str(len(body)),
        },
        body=io.BytesIO(body),
    )
    return b"".join(response.body)


def test_an_upload_pack_that_fails_is_logged_with_gits_reason(tmp_path, caplog):
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "part.scad").write_text("cube(10);\n")
    _git("add", "part.scad", cwd=work)
    _git("-c", "user.name=A", "-c", "user.email=a@example.org", "commit", "-qm", "A part", cwd=work)
    head = _git("rev-parse", "HEAD", cwd=work)
    repo = tmp_path / "repo.git"
    _git("clone", "-q", "--bare", str(work), str(repo), cwd=tmp_path)

    with caplog.at_level(logging.WARNING, logger="designs.git"):
        assert b"PACK" in _fetch(repo, head)
    assert not caplog.records  # a fetch that works logs nothing

    # Lose the file's blob: git can still announce the commit, but not pack it.
    blob = _git("rev-parse", "HEAD:part.scad", cwd=work)
    (repo / "objects" / blob[:2] / blob[2:]).unlink()
    with caplog.at_level(logging.WARNING, logger="designs.git"):
        _fetch(repo, head)
    assert [r.getMessage() for r in caplog.records if "http-backend exited" in r.getMessage()], caplog.text
    assert blob[:7] in caplog.text or "unable to read" in caplog.text or "missing" in caplog.text
