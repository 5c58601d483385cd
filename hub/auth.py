"""Who is asking: personal access tokens (`Authorization: Bearer fh_…` or `Token fh_…`
for the API), and the one place where `request.user` is narrowed to a type.

`request.user` is `User | AnonymousUser` to the type checker everywhere. Views never
cast it: a view behind sign-in (`login_required`, `IsAuthenticated`) asks for
`signed_in_user(request)`, and a view anyone may see passes `viewer(request)` to
selectors that take a `Viewer`.
"""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from hub.exceptions import PermissionDenied
from hub.models import TOKEN_PREFIX, AccessToken, User, hash_token

# Whoever looks at a page or calls the API: selectors that show public things to anyone.
Viewer: TypeAlias = User | AnonymousUser


def viewer(request: HttpRequest | Request) -> Viewer:
    """The request's user, signed in or anonymous."""
    user = request.user
    assert isinstance(user, User | AnonymousUser)  # what the auth middleware sets
    return user


def signed_in_user(request: HttpRequest | Request) -> User:
    """The signed-in user of a request that sign-in already guards.

    Views call it behind `login_required` or `IsAuthenticated`, so an anonymous request
    never reaches it; if one does (a guard forgotten), it is refused, never served.
    """
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied("Sign in to do this.")
    return user


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


def basic_auth_user(authorization: str) -> tuple[User, AccessToken] | None:
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
        return found
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
    return found
