"""Serving file contents at a revision: content type, ETag = blob sha, ranges, safety.

Files come from strangers, so a raw file must never run as a page of the hub: HTML and
SVG are served with a sandboxing CSP and `nosniff`, and HTML as plain text.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from typing import IO
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from designs import selectors
from designs.git import TreeEntry
from designs.lfs_store import StoreError, lfs_store
from designs.models import Design

EXTRA_TYPES = {
    ".stl": "model/stl",
    ".3mf": "model/3mf",
    ".obj": "model/obj",
    ".ply": "application/x-ply",
    ".step": "model/step",
    ".stp": "model/step",
    ".gcode": "text/x-gcode",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".scad": "text/plain",
    ".glb": "model/gltf-binary",
}
TEXT_AS_PLAIN = {"text/html", "application/xhtml+xml", "text/javascript", "application/javascript"}
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_type_for(path: str) -> str:
    lower = path.lower()
    for ext, kind in EXTRA_TYPES.items():
        if lower.endswith(ext):
            return kind
    guessed, _ = mimetypes.guess_type(path)
    if guessed in TEXT_AS_PLAIN:
        return "text/plain"
    return guessed or "application/octet-stream"


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

    range_match = RANGE_RE.match(request.headers.get("Range", ""))
    if range_match and size:
        start_text, end_text = range_match.groups()
        if start_text:
            start, end = int(start_text), int(end_text) if end_text else size - 1
        else:
            start, end = max(size - int(end_text or 0), 0), size - 1
        end = min(end, size - 1)
        if start > end or start >= size:
            if lfs_file is not None:
                lfs_file.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(content(start, end), status=206, content_type=content_type)
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
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
