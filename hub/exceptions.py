"""The domain's errors, and the one place that turns them into HTTP answers.

Services raise these; the DRF exception handler below and the page views map them to
400/403/404/409/413/429 with the message, so no view repeats a try/except of its own.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of the errors a person can act on. `status` is the HTTP status it maps to."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ValidationError(HubError):
    status = 400
    code = "invalid"


class PermissionDenied(HubError):
    status = 403
    code = "permission_denied"


class NotFound(HubError):
    status = 404
    code = "not_found"


class Conflict(HubError):
    """The state moved under the request (a branch head, a name taken)."""

    status = 409
    code = "conflict"


class TooLarge(HubError):
    status = 413
    code = "too_large"


class TooManyAttempts(HubError):
    """Locked out for a while after too many wrong passwords (django-axes counts them)."""

    status = 429
    code = "too_many_attempts"


DATABASE_UNAVAILABLE = (
    "The hub's database is not answering right now; nothing was changed. Try again in a moment."
)


def api_exception_handler(exc: Exception, context: dict):
    # Imported here so that this module stays importable without Django settings: the
    # git pre-receive hook uses the same errors through designs.paths.
    from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
    from django.db import InterfaceError, OperationalError
    from django.http import Http404
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.response import Response
    from rest_framework.views import exception_handler

    if isinstance(exc, HubError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is restarting or unreachable: nothing was written, try again.
        return Response(
            {"detail": DATABASE_UNAVAILABLE, "code": "unavailable"}, status=503, headers={"Retry-After": "5"}
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    return exception_handler(exc, context)
