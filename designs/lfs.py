"""Git LFS for the stock git-lfs client, under /<owner>/<design>.git/info/lfs/.

- `objects/batch`: the batch API (operation download or upload, the basic transfer),
  answering per object with actions or an error;
- `objects/<oid>`: basic transfer download (GET) and upload (PUT, `objects/<oid>/<size>`);
- `verify`: the client's check after an upload;
- `locks`, `locks/verify`, `locks/<id>/unlock`: file locking (`git lfs lock`).

Access is decided exactly as for git (`githttp.authorise`, username + personal access
token), and the `Authorization` header of the batch request is echoed in each action, so
the transfers are checked again with the same credentials. Bodies stream between the
request and the store (designs.lfs_store); an object is never held in memory.
Protocol: github.com/git-lfs/git-lfs/tree/main/docs/api (batch, basic-transfers, locking).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from designs import selectors, services
from designs.githttp import AccessRefused, authorise, request_stream
from designs.lfs_store import StoreError, lfs_store, valid_oid
from designs.models import Design, LfsLock
from hub.exceptions import Conflict, HubError

LFS_JSON = "application/vnd.git-lfs+json"
JSON_TYPES = (LFS_JSON, "application/json")
# The credentials are echoed, not minted, so this only tells the client when to ask again.
ACTION_EXPIRES_IN = 3600
MAX_BATCH_OBJECTS = 1000
MAX_LOCKS_PAGE = 1000


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _answer(status: int, body: dict[str, Any], *, challenge: bool = False) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=LFS_JSON)
    if challenge:
        response["WWW-Authenticate"] = 'Basic realm="fabhub"'
    return response


def _lfs_endpoint(*methods: str):
    """Method check, and every refusal answered as Git LFS JSON `{"message": …}`."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def run(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = _answer(405, {"message": f"Use {' or '.join(methods)} here."})
                response["Allow"] = ", ".join(methods)
                return response
            # A cross-site form cannot send a JSON content type, so a browser's session
            # cookie can never be used to batch, verify or lock on a visitor's behalf.
            if request.method == "POST" and request.content_type not in JSON_TYPES:
                return _answer(415, {"message": f"Send {LFS_JSON}."})
            try:
                return view(request, *args, **kwargs)
            except AccessRefused as refused:
                return _answer(refused.status, {"message": refused.message}, challenge=refused.challenge)
            except _BadRequest as bad:
                return _answer(bad.status, {"message": bad.message})
            except HubError as exc:
                return _answer(exc.status, {"message": exc.message})

        return run

    return decorate


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except RequestDataTooBig:
        raise _BadRequest(413, "The request body is too large.") from None
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest(422, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _BadRequest(422, "The request body must be a JSON object.")
    return body


def _valid_size(size: Any) -> bool:
    return isinstance(size, int) and not isinstance(size, bool) and size >= 0


def _lfs_url(request: HttpRequest, design: Design) -> str:
    """Absolute, so the client can follow it: FABHUB_PUBLIC_URL if set, else the request's."""
    root = settings.FABHUB_PUBLIC_URL or request.build_absolute_uri("/")
    return f"{root.rstrip('/')}/{design.owner.username}/{design.slug}.git/info/lfs"


def _action(request: HttpRequest, href: str) -> dict[str, Any]:
    action: dict[str, Any] = {"href": href, "expires_in": ACTION_EXPIRES_IN}
    if request.headers.get("Authorization"):
        action["header"] = {"Authorization": request.headers["Authorization"]}
    return action


def _object_error(oid: Any, size: Any, code: int, message: str) -> dict[str, Any]:
    return {"oid": oid, "size": size, "error": {"code": code, "message": message}}


# -- batch ------------------------------------------------------------------------------


@_lfs_endpoint("POST")
def batch(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    body = _json_body(request)
    operation = body.get("operation")
    if operation not in ("download", "upload"):
        return _answer(422, {"message": "operation must be 'download' or 'upload'."})
    access = authorise(request, owner, slug, "write" if operation == "upload" else "read")
    design = access.design
    if body.get("hash_algo", "sha256") != "sha256":
        return _answer(409, {"message": "Only sha256 object ids are supported."})
    if "basic" not in (body.get("transfers") or ["basic"]):
        return _answer(422, {"message": "Only the basic transfer adapter is supported."})
    items = body.get("objects")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return _answer(422, {"message": "objects must be a list of {oid, size}."})
    if len(items) > MAX_BATCH_OBJECTS:
        return _answer(413, {"message": f"Ask for at most {MAX_BATCH_OBJECTS} objects per batch."})

    limit = settings.FABHUB_MAX_LFS_OBJECT_BYTES
    answers: list[dict[str, Any] | None] = []
    wanted: dict[str, int] = {}
    for item in items:
        oid, size = item.get("oid"), item.get("size")
        if not valid_oid(oid):
            answers.append(
                _object_error(oid, size, 422, "Invalid object id: expected a sha256 in lowercase hex.")
            )
        elif not _valid_size(size):
            answers.append(_object_error(oid, size, 422, "Invalid size: expected a whole number of bytes."))
        elif operation == "upload" and size > limit:
            answers.append(
                _object_error(oid, size, 422, f"The object is larger than the limit of {limit:,} bytes.")
            )
        else:
            answers.append(None)
            wanted[oid] = size

    base = _lfs_url(request, design)
    if operation == "download":
        served = selectors.lfs_objects_served(design, wanted)
        store = lfs_store()
        available = {oid: size for oid, size in served.items() if store.exists(oid)}

        def answer(oid: str, size: int) -> dict[str, Any]:
            if oid not in available:
                return _object_error(oid, size, 404, "Object does not exist.")
            return {
                "oid": oid,
                "size": available[oid],
                "authenticated": True,
                "actions": {"download": _action(request, f"{base}/objects/{oid}")},
            }

    else:
        present = services.lfs_objects_present(
            design=design, user=access.writer, objects=list(wanted.items())
        )

        def answer(oid: str, size: int) -> dict[str, Any]:
            if oid in present:
                return {"oid": oid, "size": size}  # no actions: the hub has it
            return {
                "oid": oid,
                "size": size,
                "authenticated": True,
                "actions": {
                    "upload": _action(request, f"{base}/objects/{oid}/{size}"),
                    "verify": _action(request, f"{base}/verify"),
                },
            }

    objects = [
        found if found is not None else answer(item["oid"], item["size"])
        for item, found in zip(items, answers, strict=True)
    ]
    return _answer(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})


# -- basic transfer -----------------------------------------------------------------------


@_lfs_endpoint("GET", "HEAD", "PUT")
def object_content(
    request: HttpRequest, owner: str, slug: str, oid: str, size: str | None = None
) -> HttpResponseBase:
    if request.method == "PUT":
        return _upload(request, owner, slug, oid, size)
    if size is not None:
        return _answer(404, {"message": "Object does not exist."})
    access = authorise(request, owner, slug, "read")
    design = access.design
    served = selectors.lfs_objects_served(design, [oid])
    if oid not in served:
        return _answer(404, {"message": "Object does not exist."})
    try:
        content = lfs_store().open(oid)
    except StoreError:
        return _answer(404, {"message": "Object does not exist."})
    response = FileResponse(content, content_type="application/octet-stream")
    response["Content-Length"] = str(served[oid])
    return response


def _upload(request: HttpRequest, owner: str, slug: str, oid: str, size: str | None) -> HttpResponse:
    access = authorise(request, owner, slug, "write")
    design = access.design
    length = request.META.get("CONTENT_LENGTH") or None
    if length is not None and not length.isdigit():
        return _answer(400, {"message": "Malformed Content-Length."})
    if size is not None and length is not None and int(length) != int(size):
        return _answer(400, {"message": f"Object {oid} is {size} bytes; the request sends {length}."})
    expected = size if size is not None else length
    if expected is None:
        # A chunked body can only be checked against the size the batch request announced.
        return _answer(411, {"message": "Send a Content-Length, or PUT to the href the batch API gave."})
    services.lfs_object_upload(
        design=design, user=access.writer, oid=oid, size=int(expected), stream=request_stream(request)
    )
    return HttpResponse(status=200)


@_lfs_endpoint("POST")
def verify(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    access = authorise(request, owner, slug, "write")
    design = access.design
    body = _json_body(request)
    oid, size = body.get("oid"), body.get("size")
    if not valid_oid(oid) or not _valid_size(size):
        return _answer(422, {"message": "Send the object's oid (sha256) and size."})
    if selectors.lfs_objects_served(design, [oid]).get(oid) != size or not lfs_store().exists(oid):
        return _answer(404, {"message": f"Object {oid} ({size} bytes) was not received."})
    return _answer(200, {})


# -- locks --------------------------------------------------------------------------------


def _lock_json(lock: LfsLock) -> dict[str, Any]:
    return {
        "id": str(lock.pk),
        "path": lock.path,
        "locked_at": lock.created_at.isoformat(),
        "owner": {"name": lock.owner.username},
    }


def _page_limit(value: Any) -> int:
    if value in (None, ""):
        return 100
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        raise _BadRequest(422, "limit must be a positive whole number.")
    return min(max(number, 1), MAX_LOCKS_PAGE)


@_lfs_endpoint("GET", "POST")
def locks(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    if request.method == "POST":
        return _lock_create(request, owner, slug)
    access = authorise(request, owner, slug, "read")
    design = access.design
    page, next_cursor = selectors.lfs_locks(
        design,
        path=request.GET.get("path") or None,
        lock_id=request.GET.get("id") or None,
        cursor=request.GET.get("cursor") or None,
        limit=_page_limit(request.GET.get("limit")),
    )
    return _answer(200, {"locks": [_lock_json(lock) for lock in page], "next_cursor": next_cursor or ""})


def _lock_create(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    access = authorise(request, owner, slug, "write")
    design = access.design
    path = _json_body(request).get("path")
    if not isinstance(path, str):
        return _answer(422, {"message": "Send the path to lock."})
    try:
        lock = services.lfs_lock_create(design=design, user=access.writer, path=path)
    except Conflict as exc:
        lock_id = exc.extra.get("lock_id")
        held = (
            LfsLock.objects.select_related("owner").filter(pk=lock_id).first()
            if lock_id is not None
            else None
        )
        return _answer(409, {"message": exc.message, **({"lock": _lock_json(held)} if held else {})})
    return _answer(201, {"lock": _lock_json(lock)})


@_lfs_endpoint("POST")
def locks_verify(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """Before a push, git-lfs asks which locks are the pusher's and which are others'."""
    access = authorise(request, owner, slug, "write")
    design = access.design
    body = _json_body(request)
    cursor = body.get("cursor")
    page, next_cursor = selectors.lfs_locks(
        design, cursor=cursor if isinstance(cursor, str) else None, limit=_page_limit(body.get("limit"))
    )
    ours = [_lock_json(lock) for lock in page if lock.owner_id == access.writer.pk]
    theirs = [_lock_json(lock) for lock in page if lock.owner_id != access.writer.pk]
    return _answer(200, {"ours": ours, "theirs": theirs, "next_cursor": next_cursor or ""})


@_lfs_endpoint("POST")
def lock_unlock(request: HttpRequest, owner: str, slug: str, lock_id: str) -> HttpResponse:
    access = authorise(request, owner, slug, "write")
    design = access.design
    force = _json_body(request).get("force") is True
    lock = services.lfs_lock_release(design=design, user=access.writer, lock_id=int(lock_id), force=force)
    return _answer(200, {"lock": _lock_json(lock)})
