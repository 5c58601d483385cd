"""git smart HTTP: `git clone/fetch/push https://hub/<owner>/<design>.git`.

Access is decided here, then `git http-backend` (designs.git.http_backend) does the
protocol, with request and response bodies streamed. Pushes run the hub's pre-receive
rules (designs/prereceive.py) and, once git's answer has been sent, tell the hub what
changed (the push's follow-up: `PushAnswer`).
"""

from __future__ import annotations

import fcntl
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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

logger = logging.getLogger(__name__)

SERVICES = {"git-upload-pack": "read", "git-receive-pack": "write"}
# `version=2` and the like: keys and values git's protocol negotiation uses, nothing else.
GIT_PROTOCOL_RE = re.compile(r"^[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?(:[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?)*$")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Held by a push's follow-up, in the repository's folder (git ignores files it does not know).
FOLLOW_UP_LOCK = "fabhub-push-follow-up.lock"


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


def _follow_up_lock(design: Design) -> IO[bytes]:
    """The design's follow-up lock, taken (an advisory `flock`, shared by every worker
    process); closing the file releases it."""
    lock = open(design.repo_path / FOLLOW_UP_LOCK, "a+b")  # held across calls: no `with`
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    except BaseException:
        lock.close()
        raise
    return lock


def push_followed_up(design: Design) -> None:
    """Wait until the hub has learned of every push to `design` whose answer was sent
    (the follow-up of each holds the lock from before its answer's last bytes)."""
    _follow_up_lock(design).close()


class PushAnswer:
    """git's answer to a push, then the push's follow-up (`services.design_pushed`: the
    new commits learned of, their analyses and the search index queued, the first branch
    made the default one), run when the server closes the response: after the last byte
    has gone out, so the pusher does not wait for it.

    The follow-up holds the design's follow-up lock from before the answer ends until it
    is done, and every push waits for that lock before it reads the design's rules: a
    push started once an earlier one has been answered is checked against what the
    earlier one left (the default branch it named), as if the follow-up had run inside
    the earlier request.
    """

    def __init__(
        self, chunks: Iterator[bytes], *, design: Design, refs_before: dict[str, str], pusher: User
    ) -> None:
        self._chunks = chunks
        self._design = design
        self._refs_before = refs_before
        self._pusher = pusher
        self._lock: IO[bytes] | None = None
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        # Taken before the server sends the end of the answer (it asks for the next chunk
        # first), so the pusher cannot start another push before the lock is held.
        self._lock = _follow_up_lock(self._design)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            # If the client hung up, git may still be running: wait for it to finish (it
            # may have moved refs), then learn of what it did.
            close_chunks = getattr(self._chunks, "close", None)
            if close_chunks is not None:
                close_chunks()
            if self._lock is None:
                self._lock = _follow_up_lock(self._design)
            services.design_pushed(design=self._design, refs_before=self._refs_before, pusher=self._pusher)
        except Exception:
            # The server swallows what close() raises: say it here.
            logger.exception("the follow-up of a push to %s failed", self._design.full_name)
        finally:
            if self._lock is not None:
                self._lock.close()


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
    refs_before: dict[str, str] = {}
    if pushing:
        # An earlier push's follow-up may still be running: its rules (the default branch
        # it may have named) are read once it is done.
        push_followed_up(design)
        design.refresh_from_db(fields=["default_branch", "allow_default_branch_rewrite", "allow_tag_changes"])
        refs_before = design.repo.refs()
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
    body: Iterator[bytes] | PushAnswer = backend.body
    if pushing:
        body = PushAnswer(backend.body, design=design, refs_before=refs_before, pusher=access.writer)
    response = StreamingHttpResponse(body, status=backend.status)
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
