"""Refuse request bodies over the configured size before reading a byte of them."""

from __future__ import annotations

import re

from django.http import JsonResponse

from hub.uploads import request_limit, too_large_message

# git and Git LFS transfers have limits of their own (per blob, per object) and may be
# larger than any form upload.
GIT_TRANSFER_RE = re.compile(r"^/[^/]+/[^/]+?(\.git)?/(git-receive-pack|git-upload-pack|info/lfs/)")


class RequestSizeLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if GIT_TRANSFER_RE.match(request.path_info):
            return self.get_response(request)
        limit = request_limit(request.path_info)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return JsonResponse(
                {
                    "detail": too_large_message("The request", length, limit),
                    "code": "too_large",
                    "limit": limit,
                },
                status=413,
            )
        return self.get_response(request)
