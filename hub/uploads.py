"""Refuse an oversized upload while it streams in, before it fills the disk."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from hub.exceptions import TooLarge


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
        limit = settings.FABHUB_MAX_UPLOAD_BYTES
        if self.received > limit:
            raise TooLarge(too_large_message(self.file_name or "A file", 0, limit), limit=limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
