"""The hub's own middleware: the health check, and refusing request bodies over the
configured size before reading a byte of them."""

from __future__ import annotations

import re

from django.db import DatabaseError, connection
from django.http import JsonResponse

from hub.uploads import request_limit, too_large_message

# git and Git LFS transfers have limits of their own (per blob, per object) and may be
# larger than any form upload.
GIT_TRANSFER_RE = re.compile(r"^/[^/]+/[^/]+?(\.git)?/(git-receive-pack|git-upload-pack|info/lfs/)")


class HealthCheckMiddleware:
    """`GET /healthz`: 200 once this process serves requests and reaches its database,
    else 503. First in the chain and cheap on purpose: no session, no template, and no
    host check or HTTPS redirect (those come later), so a load balancer or the compose
    file's health check can ask over plain HTTP by any address. It says nothing else."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info != "/healthz":
            return self.get_response(request)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            return JsonResponse({"status": "database unreachable"}, status=503)
        return JsonResponse({"status": "ok"})


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
