"""Writes of the hub app: personal access tokens."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from hub.exceptions import NotFound
from hub.models import AccessToken, User, hash_token, new_raw_token


def token_create(
    *, user: User, name: str, scope: str = AccessToken.Scope.WRITE, expires_at: datetime | None = None
) -> tuple[AccessToken, str]:
    """Create a token; return it and its raw value, which is never stored or shown again."""
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
