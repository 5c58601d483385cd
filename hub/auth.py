"""Who is asking, and with what: the one credential resolver, and the one place where
`request.user` is narrowed to a type.

Every surface — the REST API, the raw-file pages, git smart HTTP and Git LFS — learns who
is asking from `resolve` (or, inside DRF, from its two halves: `credential_from_header`
and the session), which yields the user *and* the `Credential` they used. Scope, expiry and
revocation are therefore decided once: `user_for_token` refuses a revoked or expired token
on every surface, and `require_write` is the only read-only rule, used by DRF's permission
and by git and LFS alike.

`request.user` is `User | AnonymousUser` to the type checker everywhere. Views never
cast it: a view behind sign-in (`login_required`, `IsAuthenticated`) asks for
`signed_in_user(request)`, and a view anyone may see passes `viewer(request)` to
selectors that take a `Viewer`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from hub.accounts import lockout_message
from hub.exceptions import PermissionDenied, TooManyAttempts
from hub.models import AGENT_TOKEN_PREFIX, TOKEN_PREFIX, AccessToken, User, hash_token

# Whoever looks at a page or calls the API: selectors that show public things to anyone.
Viewer: TypeAlias = User | AnonymousUser

# What git, git-lfs and API clients show when a read-only credential tries to write.
READ_ONLY_MESSAGE = "This token has read access only: use a token with write scope to change anything."


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


# -- credentials --------------------------------------------------------------------------


class CredentialKind(models.TextChoices):
    SESSION = "session", "Signed-in session"
    PERSONAL_TOKEN = "personal-token", "Personal access token"
    FEED_SECRET = "feed-secret", "Secret address of a calendar feed"
    LAB_AGENT = "lab-agent", "Lab agent token"


@dataclass(frozen=True)
class Credential:
    """How a request proved who it is: the kind, the token row if any, and its scope."""

    kind: CredentialKind
    scope: AccessToken.Scope
    token: AccessToken | None = None
    # The lab agent (machines.models.LabAgent) of a LAB_AGENT credential.
    agent: object | None = None

    @classmethod
    def session(cls) -> Credential:
        # A person signed in with their password may do all they may do.
        return cls(kind=CredentialKind.SESSION, scope=AccessToken.Scope.WRITE)

    @classmethod
    def for_token(cls, token: AccessToken) -> Credential:
        return cls(kind=CredentialKind.PERSONAL_TOKEN, scope=AccessToken.Scope(token.scope), token=token)

    @classmethod
    def for_feed_secret(cls, owner: User) -> Credential | None:
        """The credential of a calendar feed's secret address, once its app has found the
        feed: only ever read-only, and void once its owner is deactivated, like their
        tokens. (Resetting the address is its revocation; it never expires.)"""
        if not owner.is_active:
            return None
        return cls(kind=CredentialKind.FEED_SECRET, scope=AccessToken.Scope.READ)

    @property
    def may_write(self) -> bool:
        return self.scope == AccessToken.Scope.WRITE

    @property
    def expires_at(self) -> datetime | None:
        """When the credential stops working; None for a session or a token without expiry."""
        return self.token.expires_at if self.token is not None else None


def require_write(credential: Credential) -> None:
    """The read-only rule, for every surface: a read-scoped credential never writes."""
    if not credential.may_write:
        raise PermissionDenied(READ_ONLY_MESSAGE)


def api_credential(request: Request) -> Credential:
    """The credential of an API request that sign-in already guards (`request.auth`).

    Both DRF authentication classes below set it, so behind `IsAuthenticated` it is
    always there; if a guard was forgotten, the request is refused, never served.
    """
    credential = request.auth
    if not isinstance(credential, Credential):
        raise PermissionDenied("Sign in to do this.")
    return credential


class BadCredentials(Exception):
    """Credentials were sent and are wrong: answer 401 whatever the resource."""


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


# Finds the active lab agent of a token (registered by the machines app, which owns
# agents), or None.
AgentResolver: TypeAlias = Callable[[str], object | None]
_agent_resolver: AgentResolver | None = None


def register_agent_resolver(resolver: AgentResolver) -> None:
    global _agent_resolver
    _agent_resolver = resolver


def _one_header(authorization: str) -> str:
    """The header's one credential: the same value repeated is one; different ones are refused."""
    # A client may send the same header twice — git-lfs adds its `http.extraHeader` to the
    # header the batch answer echoes — and the WSGI server joins repeats with commas. The
    # same credential twice is one credential; two different ones are refused, not chosen
    # between. (No scheme's value holds a comma: tokens and base64 are comma-free.)
    repeats = {part.strip() for part in authorization.split(",")}
    if len(repeats) > 1:
        raise BadCredentials
    return repeats.pop()


def agent_credential_from_header(authorization: str) -> Credential:
    """The credential of a lab agent's request: `Authorization: Bearer fha_…` only.

    BadCredentials for anything else — no header, a personal token, a revoked agent: the
    agent API is for agents, and a person's token never acts as one.
    """
    scheme, _, value = _one_header(authorization).partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(AGENT_TOKEN_PREFIX) or _agent_resolver is None:
        raise BadCredentials
    agent = _agent_resolver(value)
    if agent is None:
        raise BadCredentials
    return Credential(kind=CredentialKind.LAB_AGENT, scope=AccessToken.Scope.WRITE, agent=agent)


def credential_from_header(authorization: str) -> tuple[User, Credential] | None:
    """The user and credential of an `Authorization` header: `Bearer <token>`,
    `Token <token>` or Basic with username + token.

    None when no header was sent; BadCredentials when one was and it is not an active
    token (a password never works, a Basic username must be the token's owner, and a lab
    agent's token works on the agent API only).
    """
    authorization = _one_header(authorization)
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if not scheme:
        return None
    if scheme in ("bearer", "token"):
        found = user_for_token(value.strip())
    elif scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials from None
        username, _, secret = decoded.partition(":")
        found = user_for_token(secret)
        # git sends any username it was given; an empty one is git's "token only" habit.
        if found is not None and username and username.lower() != found[0].username.lower():
            found = None
    else:
        found = None
    if found is None:
        raise BadCredentials
    user, token = found
    return user, Credential.for_token(token)


def resolve(request: HttpRequest) -> tuple[User, Credential] | None:
    """Who asks and with what: the `Authorization` header if sent, else the session.

    None for an anonymous request; BadCredentials for a header that is not an active
    token. A header wins over a session cookie, so a script's token is never widened
    by a browser's sign-in.
    """
    found = credential_from_header(request.headers.get("Authorization", ""))
    if found is not None:
        return found
    user = getattr(request, "user", None)
    if isinstance(user, User) and user.is_authenticated:
        return user, Credential.session()
    return None


# -- DRF: the resolver's two halves, so DRF keeps its CSRF check on sessions -----------------


class AccessTokenAuthentication(authentication.BaseAuthentication):
    """Any `Authorization` header the resolver understands; `request.auth` is its Credential."""

    def authenticate(self, request):
        try:
            return credential_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        except BadCredentials:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.") from None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="fabhub"'


class SessionCredentialAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (CSRF included), with the session's Credential as `request.auth`."""

    def authenticate(self, request):
        found = super().authenticate(request)
        if found is None:
            return None
        return found[0], Credential.session()


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' answer to a locked-out attempt (AXES_LOCKOUT_CALLABLE): under /api/
    the API's error shape, elsewhere the page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": lockout_message(), "code": TooManyAttempts.code}, status=429)
    context = {"cooloff_timedelta": settings.AXES_COOLOFF_TIME}
    return render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=429)


def client_ip(request: HttpRequest) -> str | None:
    """The address a request came from, as login throttling (django-axes) counts it.

    Without the proxy setting it is the socket's peer. Behind the documented proxy (one
    nginx or similar, BEHIND_HTTPS_PROXY) the peer is the proxy, and the client is the
    right-most X-Forwarded-For entry: the one the proxy appended. Anything left of it came
    from the client and is not believed, so nobody escapes a lockout by inventing an
    address. (django-ipware's `proxy_count` counts proxies *listed in* the header, which a
    single proxy in front does not add; this one rule is clearer than configuring it.)
    """
    peer = request.META.get("REMOTE_ADDR") or None
    if not settings.BEHIND_HTTPS_PROXY:
        return peer
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    return forwarded[-1] if forwarded[-1] else peer
