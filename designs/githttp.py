"""git smart HTTP: `git clone/fetch/push https://hub/<owner>/<design>.git`.

Access is decided here, then `git http-backend` (designs.git.http_backend) does the
protocol, with request and response bodies streamed. Pushes run the hub's pre-receive
rules (designs/prereceive.py) and, once git has answered, tell the hub what changed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from designs import selectors, services
from designs.git import http_backend
from designs.lfs_store import LocalObjectStore, lfs_store
from designs.models import Design
from hub.auth import BadCredentials, Viewer, require_write, resolve, viewer
from hub.exceptions import NotFound, PermissionDenied
from hub.models import User

SERVICES = {"git-upload-pack": "read", "git-receive-pack": "write"}
# `version=2` and the like: keys and values git's protocol negotiation uses, nothing else.
GIT_PROTOCOL_RE = re.compile(r"^[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?(:[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?)*$")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _text(status: int, message: str, *, challenge: bool = False) -> HttpResponse:
    # git shows a text/plain error body to the user, prefixed with "remote:".
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    if challenge:
        response["WWW-Authenticate"] = 'Basic realm="fabhub"'
    return response


class AccessRefused(Exception):
    """The answer to a git or Git LFS request that may not go on (401, 403 or 404)."""

    def __init__(self, status: int, message: str, *, challenge: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge


@dataclass(frozen=True)
class Access:
    """What `authorise` grants: the design, and who asked (anonymous only for reads)."""

    design: Design
    requester: Viewer

    @property
    def writer(self) -> User:
        """The requester of write access, whom `authorise` has checked is signed in."""
        if not isinstance(self.requester, User):
            raise AccessRefused(401, "Authentication required.", challenge=True)
        return self.requester


def authorise(request: HttpRequest, owner: str, slug: str, access: str) -> Access:
    """The design and the requester, if the requester may have `access` ("read" or
    "write") to it; else AccessRefused. Shared by git and Git LFS (designs/lfs.py)."""
    try:
        found = resolve(request)
    except BadCredentials:
        raise AccessRefused(
            401, "Invalid credentials: use your username and a personal access token.", challenge=True
        ) from None
    requester: Viewer = found[0] if found is not None else viewer(request)
    try:
        design = selectors.design_get(user=requester, owner=owner, slug=slug)
    except NotFound:
        if not requester.is_authenticated:
            # Anonymous: the same challenge whether it is private or absent, so nothing leaks.
            raise AccessRefused(401, "Authentication required.", challenge=True) from None
        raise AccessRefused(404, f"Repository {owner}/{slug} not found.") from None
    if access == "write":
        if found is None:
            raise AccessRefused(
                401, "Pushing needs your username and a personal access token.", challenge=True
            )
        if not selectors.design_can_write(design, requester):
            raise AccessRefused(403, f"You cannot push to {design.full_name}: you have read access only.")
        try:
            require_write(found[1])
        except PermissionDenied as refused:
            raise AccessRefused(403, refused.message) from None
        mirror = selectors.design_mirror(design)
        if mirror is not None:
            raise AccessRefused(
                403, f"{design.full_name} is a read-only mirror of {mirror.url}: push there, or fork it here."
            )
    return Access(design, requester)


def _authorise(request: HttpRequest, owner: str, slug: str, access: str) -> Access | HttpResponse:
    """The access granted, or the answer that refuses it."""
    try:
        return authorise(request, owner, slug, access)
    except AccessRefused as refused:
        return _text(refused.status, refused.message, challenge=refused.challenge)


def _hook_env(design: Design) -> dict[str, str]:
    env = {
        "FABHUB_PYTHON": sys.executable,
        "PYTHONPATH": str(PROJECT_ROOT),
        "FABHUB_DEFAULT_BRANCH": design.default_branch,
        "FABHUB_ALLOW_DEFAULT_BRANCH_REWRITE": "1" if design.allow_default_branch_rewrite else "0",
        "FABHUB_ALLOW_TAG_CHANGES": "1" if design.allow_tag_changes else "0",
        "FABHUB_MAX_BLOB_BYTES": str(settings.FABHUB_MAX_GIT_BLOB_BYTES),
        "FABHUB_GIT_BINARY": settings.FABHUB_GIT_BINARY,
    }
    store = lfs_store()
    if isinstance(store, LocalObjectStore):
        # The hook checks that a push's LFS pointers name objects the hub has.
        env["FABHUB_LFS_ROOT"] = str(store.root)
    return env


def _relay(access: Access, request: HttpRequest, path_info: str, *, pushing: bool) -> HttpResponseBase:
    design = access.design
    headers = {
        name: request.headers.get(name, "") for name in ("Content-Type", "Content-Length", "Content-Encoding")
    }
    protocol = request.headers.get("Git-Protocol", "")
    if protocol:
        if len(protocol) > 256 or not GIT_PROTOCOL_RE.match(protocol):
            return _text(400, "Malformed Git-Protocol header.")
        headers["Git-Protocol"] = protocol
    refs_before = design.repo.refs() if pushing else {}
    backend = http_backend(
        design.repo_path,
        # Django sets it for every request it serves; None only on a hand-built HttpRequest.
        method=request.method or "GET",
        path_info=path_info,
        query=request.META.get("QUERY_STRING", ""),
        request_headers=headers,
        body=request_stream(request) if request.method == "POST" else None,
        remote_user=getattr(access.requester, "username", ""),
        hook_env=_hook_env(design),
    )

    def body():
        try:
            yield from backend.body
        finally:
            # Even if the client hung up, git may have updated refs: learn of them.
            if pushing:
                services.design_pushed(design=design, refs_before=refs_before, pusher=access.writer)

    response = StreamingHttpResponse(body(), status=backend.status)
    for name, value in backend.headers:
        response[name] = value
    return response


def request_stream(request: HttpRequest):
    """The request body as a stream, chunked ones included.

    Django's own reader sees no body without a Content-Length, but git sends pushes over
    1 MB chunked; the WSGI server (gunicorn) de-chunks them into `wsgi.input`.
    """
    raw = request.META["wsgi.input"]
    length = request.META.get("CONTENT_LENGTH")
    if length:
        return LimitedStream(raw, int(length))
    return raw


@csrf_exempt
def info_refs(request: HttpRequest, owner: str, slug: str) -> HttpResponseBase:
    service = request.GET.get("service", "")
    if service not in SERVICES:
        return _text(403, "Only smart HTTP is served: use git 1.6.6 or newer.")
    access = _authorise(request, owner, slug, SERVICES[service])
    if isinstance(access, HttpResponse):
        return access
    return _relay(access, request, "/info/refs", pushing=False)


@csrf_exempt
def service_rpc(request: HttpRequest, owner: str, slug: str, service: str) -> HttpResponseBase:
    if request.method != "POST" or service not in SERVICES:
        return _text(405, "Use POST for git-upload-pack and git-receive-pack.")
    access = _authorise(request, owner, slug, SERVICES[service])
    if isinstance(access, HttpResponse):
        return access
    return _relay(access, request, f"/{service}", pushing=service == "git-receive-pack")
