"""The hub's own middleware: the health check, and refusing request bodies over the
configured size before reading a byte of them."""

from __future__ import annotations

import logging
import re

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpResponse, JsonResponse

from hub.exceptions import DATABASE_UNAVAILABLE
from hub.uploads import request_limit, too_large_message

logger = logging.getLogger(__name__)

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


class DatabaseUnavailableMiddleware:
    """A page whose database is restarting or unreachable answers 503 with a short
    reason and Retry-After, not a 500 (the API's handler does the same for the API).
    Nothing was written: the request's transaction never committed."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable for %s: %s", request.path_info, exception)
        response = HttpResponse(DATABASE_UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "5"
        return response


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
