"""Writes of the hub app: personal access tokens."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from hub.auth import Credential, require_write
from hub.exceptions import NotFound, ValidationError
from hub.models import AccessToken, User, hash_token, new_raw_token


def token_create(
    *,
    user: User,
    name: str,
    scope: str = AccessToken.Scope.WRITE,
    expires_at: datetime | None = None,
    credential: Credential | None = None,
) -> tuple[AccessToken, str]:
    """Create a token; return it and its raw value, which is never stored or shown again.

    `credential` is how the request asking for it authenticated (the API and the tokens
    page always pass it; None only for the hub's own callers: demo data, benchmarks,
    tests). A credential cannot hand out more than it holds: a read-only one creates no
    token at all, and a token that expires at T only creates tokens that expire by T.
    Otherwise a leaked short-lived token would buy its thief a permanent one.
    """
    if credential is not None:
        require_write(credential)
        limit = credential.expires_at
        if limit is not None and (expires_at is None or expires_at > limit):
            raise ValidationError(
                f"A token cannot outlive the token that creates it: set expires_at to "
                f"{limit.isoformat()} or earlier."
            )
    raw = new_raw_token()
    token = AccessToken.objects.create(
        user=user,
        name=name.strip() or "token",
        scope=scope,
        digest=hash_token(raw),
        hint=raw[:10],
        expires_at=expires_at,
    )
    return token, raw


def token_revoke(*, user: User, token_id: int) -> None:
    updated = AccessToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if not updated:
        raise NotFound("No such active token.")
