"""git smart HTTP: `git clone/fetch/push https://hub/<owner>/<design>.git`.

Access is decided here, then `git http-backend` (designs.git.http_backend) does the
protocol, with request and response bodies streamed. A push's rules (designs/push_rules.py)
run here too, when git's pre-receive hook hands over what arrived (`PushCheck`); once git
has answered, the hub learns what changed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from designs import selectors, services
from designs.git import Repository, http_backend
from designs.lfs_store import LocalObjectStore, lfs_store
from designs.models import Design
from designs.push_rules import PushRules, push_errors
from hub.auth import BadCredentials, Viewer, require_write, resolve, viewer
from hub.exceptions import NotFound, PermissionDenied
from hub.models import User

SERVICES = {"git-upload-pack": "read", "git-receive-pack": "write"}
# `version=2` and the like: keys and values git's protocol negotiation uses, nothing else.
GIT_PROTOCOL_RE = re.compile(r"^[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?(:[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?)*$")
OBJECT_ID_RE = re.compile(rb"[0-9a-f]{40}|[0-9a-f]{64}")
# What the pre-receive hook sends before the updates: the quarantine's variables.
QUARANTINE_LINES = {
    b"quarantine": "GIT_QUARANTINE_PATH",
    b"objects": "GIT_OBJECT_DIRECTORY",
    b"alternates": "GIT_ALTERNATE_OBJECT_DIRECTORIES",
}

logger = logging.getLogger(__name__)


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


def authorise(
    request: HttpRequest, owner: str, slug: str, access: str, *, repository_only: bool = False
) -> Access:
    """The design and the requester, if the requester may have `access` ("read" or
    "write") to it; else AccessRefused. Shared by git and Git LFS (designs/lfs.py).

    With `repository_only` (a clone or fetch, which needs only where the repository is),
    a read looks the design up by the one precompiled statement of the history pages
    (`selectors.design_get_for_history`, the same visibility rule): ~0.1 ms where the
    full lookup, with its related rows, costs ~4 ms of each of a clone's three requests.
    The design then holds its id, slug, visibility, default branch and owner's name."""
    try:
        found = resolve(request)
    except BadCredentials:
        raise AccessRefused(
            401, "Invalid credentials: use your username and a personal access token.", challenge=True
        ) from None
    requester: Viewer = found[0] if found is not None else viewer(request)
    lookup = (
        selectors.design_get_for_history if repository_only and access == "read" else selectors.design_get
    )
    try:
        design = lookup(user=requester, owner=owner, slug=slug)
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
        return authorise(request, owner, slug, access, repository_only=True)
    except AccessRefused as refused:
        return _text(refused.status, refused.message, challenge=refused.challenge)


def _push_rules(design: Design) -> PushRules:
    store = lfs_store()
    return PushRules(
        default_branch=design.default_branch,
        allow_default_branch_rewrite=design.allow_default_branch_rewrite,
        allow_tag_changes=design.allow_tag_changes,
        max_blob_bytes=settings.FABHUB_MAX_GIT_BLOB_BYTES,
        # The check that a push's LFS pointers name objects the hub has (local store only).
        lfs_root=str(store.root) if isinstance(store, LocalObjectStore) else None,
    )


class PushCheck:
    """The hub's end of designs/hooks/pre-receive: a push's rules run here, in the request
    that started git, on what the hook hands over through a pipe; the verdict goes back
    through another.

    The hook's ends are given to git (`for_git`, `env`) and closed here once it has them
    (`hand_over`), so the request's own ends see git's: the updates pipe ends when every
    git process has (a push refused before its hook ran, a probe with nothing to push, or
    git failing to start), and the hook reads an empty verdict if this process dies — it
    then refuses the push.
    """

    def __init__(self, design: Design) -> None:
        self.repo_path = design.repo_path
        self.rules = _push_rules(design)
        self._updates, hook_writes = os.pipe()
        hook_reads, self._verdict = os.pipe()
        self.for_git = (hook_writes, hook_reads)
        self.env = {"FABHUB_PUSH_TO": str(hook_writes), "FABHUB_PUSH_FROM": str(hook_reads)}
        threading.Thread(target=self._serve, daemon=True).start()

    def hand_over(self) -> None:
        """Close this process's copies of the hook's ends, once git has its own (or has
        failed to start)."""
        for fd in self.for_git:
            os.close(fd)

    def _serve(self) -> None:
        with open(self._updates, "rb") as updates, open(self._verdict, "wb") as verdict:
            handed = _read_hook_message(updates)
            if handed is None:  # git ended without running the hook
                return
            quarantine, lines = handed
            try:
                errors = self.errors(Repository(self.repo_path, quarantine=quarantine), lines)
            except Exception:
                logger.exception("checking a push to %s failed", self.repo_path)
                errors = ["the hub could not check this push; try again."]
            answer = [f"fabhub: {error}" for error in errors]
            if answer:
                answer.append("fabhub: push refused; nothing was changed.")
            try:
                verdict.write(("\n".join(answer or ["accept"]) + "\n").encode())
            except BrokenPipeError:  # the hook gave up waiting: the push is refused anyway
                pass

    def errors(self, repo: Repository, lines: list[bytes]) -> list[str]:
        """Why the push the hook describes in `lines` (git's "<old> <new> <ref>") must be
        refused; empty if it may go in."""
        updates = []
        errors = []
        for line in lines:
            fields = line.split(b" ")
            # git takes any bytes in a ref name, line breaks included; the hub keeps names
            # as text, so a name that is not UTF-8, or not one line, is refused here.
            if len(fields) != 3 or not (
                OBJECT_ID_RE.fullmatch(fields[0]) and OBJECT_ID_RE.fullmatch(fields[1])
            ):
                shown = line.decode("utf-8", errors="backslashreplace")
                errors.append(f"{shown}: not a ref update the hub can read.")
                continue
            old, new, raw_ref = fields
            try:
                ref = raw_ref.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(
                    f"{raw_ref.decode('utf-8', errors='backslashreplace')}: ref names must be UTF-8 text."
                )
                continue
            updates.append((old.decode("ascii"), new.decode("ascii"), ref))
        return errors + push_errors(repo, updates, self.rules)


def _read_hook_message(stream: BinaryIO) -> tuple[dict[str, str], list[bytes]] | None:
    """The quarantine's variables and the update lines the hook sent, or None if the
    stream ended first."""
    quarantine: dict[str, str] = {}
    updates: list[bytes] = []
    for line in stream:
        word, _, rest = line.removesuffix(b"\n").partition(b" ")
        if word == b"end":
            return quarantine, updates
        if word == b"update":
            updates.append(rest)
        elif word in QUARANTINE_LINES and rest:
            quarantine[QUARANTINE_LINES[word]] = os.fsdecode(rest)
    return None


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
    check = PushCheck(design) if pushing else None
    try:
        backend = http_backend(
            design.repo_path,
            # Django sets it for every request it serves; None only on a hand-built HttpRequest.
            method=request.method or "GET",
            path_info=path_info,
            query=request.META.get("QUERY_STRING", ""),
            request_headers=headers,
            body=request_stream(request) if request.method == "POST" else None,
            remote_user=getattr(access.requester, "username", ""),
            hook_env=check.env if check else None,
            pass_fds=check.for_git if check else (),
        )
    finally:
        if check:
            check.hand_over()

    def pushed():
        try:
            yield from backend.body
        finally:
            # Even if the client hung up, git may have updated refs: learn of them.
            services.design_pushed(design=design, refs_before=refs_before, pusher=access.writer)

    # A clone's pack goes out as git writes it, through no generator of the hub's own.
    response = StreamingHttpResponse(pushed() if check else backend.body, status=backend.status)
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
