"""Personal access tokens: `Authorization: Bearer fh_…` (or `Token fh_…`) for the API."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from hub.models import TOKEN_PREFIX, AccessToken, User, hash_token


def user_for_token(raw: str) -> tuple[User, AccessToken] | None:
    """The active token's owner, or None. Marks the token as used (at most once a minute)."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        AccessToken.objects.select_related("user")
        .filter(digest=hash_token(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


class AccessTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        found = user_for_token(header[1].decode(errors="replace"))
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return found

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="fabhub"'


class BadCredentials(Exception):
    """Credentials were sent and are wrong: answer 401 whatever the resource."""


def basic_auth_user(authorization: str) -> User | None:
    """The user of an `Authorization: Basic` (username + token) or `Bearer` header.

    None when no credentials were sent. For git, the password never works: only a
    personal access token, and it must belong to the username given.
    """
    import base64
    import binascii

    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if not scheme:
        return None
    if scheme in ("bearer", "token"):
        found = user_for_token(value.strip())
        if found is None:
            raise BadCredentials
        return found[0]
    if scheme != "basic":
        raise BadCredentials
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials from None
    username, _, secret = decoded.partition(":")
    found = user_for_token(secret)
    if found is None or (username and username.lower() != found[0].username.lower()):
        raise BadCredentials
    user, token = found
    user.fabhub_token = token  # lets callers honour read-only tokens
    return user
