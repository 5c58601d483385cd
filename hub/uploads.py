"""Refuse an oversized upload while it streams in, before it fills the disk."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from hub.exceptions import TooLarge

# The archive import (a page and an endpoint) takes files up to FABHUB_MAX_ARCHIVE_BYTES,
# which may be above the limits of any other upload: a person's whole account.
ARCHIVE_UPLOAD_PATHS = frozenset({"/api/me/imports/", "/settings/account/imports/"})


def upload_limit(path: str, view: object = None) -> int:
    """The largest file an upload to `path` may carry. A view whose files have a smaller
    limit names its setting in `upload_limit_setting` (on the function, or on the class
    of a class-based view), so that an oversized file is refused while it streams in
    rather than once it is on disk."""
    if path in ARCHIVE_UPLOAD_PATHS:
        return settings.FABHUB_MAX_ARCHIVE_BYTES
    setting = getattr(getattr(view, "cls", view), "upload_limit_setting", None)
    if setting is not None:
        return min(getattr(settings, setting), settings.FABHUB_MAX_UPLOAD_BYTES)
    return settings.FABHUB_MAX_UPLOAD_BYTES


def request_limit(path: str) -> int:
    """The largest request body to `path` (an archive, plus its form's few fields)."""
    if path in ARCHIVE_UPLOAD_PATHS:
        return max(settings.FABHUB_MAX_REQUEST_BYTES, settings.FABHUB_MAX_ARCHIVE_BYTES + 1024 * 1024)
    return settings.FABHUB_MAX_REQUEST_BYTES


def too_large_message(what: str, size: int, limit: int) -> str:
    return f"{what} is larger than the limit of {limit:,} bytes ({limit / (1024 * 1024):.0f} MB)" + (
        f"; it is {size:,} bytes." if size else "."
    )


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts each file's bytes and stops the request as soon as one exceeds the limit.

    It runs before Django's memory/temporary-file handlers and passes data through.
    """

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.request is None:
            limit = settings.FABHUB_MAX_UPLOAD_BYTES
        else:
            # Set once the URL is resolved, before any view or middleware reads the body.
            match = getattr(self.request, "resolver_match", None)
            limit = upload_limit(self.request.path_info, getattr(match, "func", None))
        if self.received > limit:
            raise TooLarge(too_large_message(self.file_name or "A file", 0, limit), limit=limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
