"""Serving file contents at a revision: content type, ETag = blob sha, ranges, safety.

Files come from strangers, so a raw file must never run as a page of the hub: HTML and
SVG are served with a sandboxing CSP and `nosniff`, and HTML as plain text.
"""

from __future__ import annotations

import mimetypes
import re

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from designs.git import Repository, TreeEntry

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


def serve_blob(request: HttpRequest, repo: Repository, entry: TreeEntry, *, download: bool = False) -> HttpResponse:
    etag = f'"{entry.sha}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    content_type = content_type_for(entry.path)
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    size = entry.size or 0
    range_match = RANGE_RE.match(request.headers.get("Range", ""))
    if range_match and size:
        start_text, end_text = range_match.groups()
        if start_text:
            start, end = int(start_text), int(end_text) if end_text else size - 1
        else:
            start, end = max(size - int(end_text or 0), 0), size - 1
        end = min(end, size - 1)
        if start > end or start >= size:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(
            repo.stream_blob(entry.sha, start=start, end=end), status=206, content_type=content_type
        )
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = StreamingHttpResponse(repo.stream_blob(entry.sha), content_type=content_type)
        response["Content-Length"] = str(size)
    response["ETag"] = etag
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
    # A commit's content never changes, so responses pinned to a sha may be cached.
    response["Cache-Control"] = "private, max-age=60"
    disposition = "attachment" if download else "inline"
    response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{_quote(entry.name)}"
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
