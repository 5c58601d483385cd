"""Serving file contents at a revision: content type, ETag = blob sha, ranges, safety.

Files come from strangers, so a raw file must never run as a page of the hub: HTML and
SVG are served with a sandboxing CSP and `nosniff`, and HTML as plain text.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import IO
from urllib.parse import quote

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from designs import selectors
from designs.git import TreeEntry
from designs.lfs_store import StoreError, lfs_store
from designs.models import Design, ReleaseAsset
from designs.paths import content_type_for

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def serve_blob(
    request: HttpRequest, design: Design, entry: TreeEntry, *, download: bool = False
) -> HttpResponseBase:
    """A file of `design` at a revision; a Git LFS pointer is served as the object's content.

    The ETag is the blob sha for LFS files too: the pointer names the object's sha256 and
    size, so it changes exactly when the content does. A pointer to an object the design
    cannot serve (never uploaded, or not linked to it) is served as the pointer text, as
    git itself holds it.
    """
    etag = f'"{entry.sha}"'
    response: HttpResponseBase
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    content_type = content_type_for(entry.path)
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    lfs_file: IO[bytes] | None = None
    pointer = selectors.design_lfs_pointer(design, entry)
    if pointer is not None:
        try:
            lfs_file = lfs_store().open(pointer.oid)
        except StoreError:
            pointer = None
    size = pointer.size if pointer is not None else entry.size or 0

    def content(start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if lfs_file is not None:
            return _stream_file(lfs_file, start=start, end=size - 1 if end is None else end)
        return design.repo.stream_blob(entry.sha, start=start, end=end)

    wanted = _byte_range(request, size)
    if wanted == UNSATISFIABLE:
        if lfs_file is not None:
            lfs_file.close()
        return _unsatisfiable(size)
    if wanted is not None:
        start, end = wanted
        response = StreamingHttpResponse(content(start, end), status=206, content_type=content_type)
        _set_range_headers(response, start, end, size)
    else:
        response = StreamingHttpResponse(content(), content_type=content_type)
        response["Content-Length"] = str(size)
    response["ETag"] = etag
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
    )
    # A commit's content never changes, so responses pinned to a sha may be cached.
    response["Cache-Control"] = "private, max-age=60"
    disposition = "attachment" if download else "inline"
    response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{_quote(entry.name)}"
    return response


UNSATISFIABLE = (-1, -1)


def _byte_range(request: HttpRequest, size: int) -> tuple[int, int] | None:
    """The (start, end) bytes, inclusive, a Range header asks of a `size`-byte file;
    None to send it whole, UNSATISFIABLE when the range lies outside it."""
    range_match = RANGE_RE.match(request.headers.get("Range", ""))
    if not range_match or not size:
        return None
    start_text, end_text = range_match.groups()
    if start_text:
        start, end = int(start_text), int(end_text) if end_text else size - 1
    else:
        start, end = max(size - int(end_text or 0), 0), size - 1
    end = min(end, size - 1)
    if start > end or start >= size:
        return UNSATISFIABLE
    return start, end


def _unsatisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response


def _set_range_headers(response: HttpResponseBase, start: int, end: int, size: int) -> None:
    response["Content-Length"] = str(end - start + 1)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"


def serve_release_asset(request: HttpRequest, asset: ReleaseAsset) -> HttpResponseBase:
    """A file attached to a release, from the object store: always a download (never
    shown as a page of the hub), typed as stored, `nosniff`, sandboxed, its ETag the
    sha256 of its content; ranges as for raw files. A file the store lost is a 404."""
    etag = f'"{asset.sha256}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponseBase = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    size = asset.size
    wanted = _byte_range(request, size)
    if wanted == UNSATISFIABLE:
        return _unsatisfiable(size)
    try:
        stored = lfs_store().open(asset.sha256)
    except StoreError as exc:
        raise Http404(f"The content of {asset.name} is missing from the store.") from exc
    if wanted is not None:
        start, end = wanted
        response = StreamingHttpResponse(
            _stream_file(stored, start=start, end=end), status=206, content_type=asset.content_type
        )
        _set_range_headers(response, start, end, size)
    else:
        response = StreamingHttpResponse(
            _stream_file(stored, start=0, end=size - 1), content_type=asset.content_type
        )
        response["Content-Length"] = str(size)
    response["ETag"] = etag
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # The name may be replaced by other bytes (deleted, then uploaded again): revalidate.
    response["Cache-Control"] = "private, no-cache"
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(asset.name)}"
    return response


def _stream_file(source: IO[bytes], *, start: int, end: int, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
    """Bytes start..end (inclusive) of an open file, in chunks; closes it when done."""
    try:
        source.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = source.read(min(chunk_size, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        source.close()


def _quote(name: str) -> str:
    return quote(name, safe="")


# -- ZIP archives ----------------------------------------------------------------------------

ZIP_CHUNK_BYTES = 256 * 1024


class _Sink(io.RawIOBase):
    """Where zipfile writes: bytes wait here until the response takes them. Not seekable,
    so zipfile writes each member's sizes after its data (a data descriptor)."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _file_chunks(design: Design, entry: TreeEntry) -> Iterator[bytes]:
    pointer = selectors.design_lfs_pointer(design, entry)
    if pointer is not None:
        try:
            stored = lfs_store().open(pointer.oid)
        except StoreError:
            pointer = None  # the object is gone: the archive holds the pointer, as git does
        else:
            with stored:
                while chunk := stored.read(ZIP_CHUNK_BYTES):
                    yield chunk
            return
    yield from design.repo.stream_blob(entry.sha, chunk_size=ZIP_CHUNK_BYTES)


def zip_stream(design: Design, sha: str, *, folder: str) -> Iterator[bytes]:
    """A ZIP of every file of `design` at commit `sha` under `folder/`, LFS files as their
    content, produced piece by piece: memory stays at a few chunks whatever the size."""
    stamp = design.repo.commit(sha).committed_at.timetuple()[:6]
    date_time = stamp if stamp[0] >= 1980 else (1980, 1, 1, 0, 0, 0)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for entry in design.repo.ls_tree(sha, recursive=True):
            if entry.kind != "blob":
                continue  # submodules are pinned commits of other repositories
            info = zipfile.ZipInfo(f"{folder}/{entry.path}", date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if entry.mode == "100755" else 0o644) << 16
            with archive.open(info, "w", force_zip64=True) as member:
                for chunk in _file_chunks(design, entry):
                    member.write(chunk)
                    if ready := sink.take():
                        yield ready
            if ready := sink.take():
                yield ready
    yield sink.take()  # the central directory


def serve_zip(design: Design, sha: str, *, name: str) -> StreamingHttpResponse:
    folder = f"{design.slug}-{name}"
    response = StreamingHttpResponse(zip_stream(design, sha, folder=folder), content_type="application/zip")
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(folder)}.zip"
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
