"""What the hub publishes about its signed records (docs/portability.md): its keys as a
DID document, its revocation status lists, and each record as the JSON it signed."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from hub import records
from hub.auth import viewer
from hub.models import Credential


def _json(document: dict, *, cache: str, public: bool = True) -> HttpResponse:
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False, "indent": 2})
    response["Cache-Control"] = cache
    if public:  # verifiers may run in a browser on another site
        response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def did_document(request: HttpRequest) -> HttpResponse:
    return _json(records.did_document(), cache="public, max-age=300")


@require_GET
def status_list(request: HttpRequest, number: int) -> HttpResponse:
    if number > Credential.objects.count() // records.STATUS_LIST_BITS:
        raise Http404("No such status list.")
    # Verifiers read revocations from here: never a stale copy.
    return _json(records.status_list_document(number), cache="no-cache")


@require_GET
def credential_document(request: HttpRequest, credential_id: uuid.UUID) -> HttpResponse:
    """The record as signed, for its subject and whoever its owner app lets see it; a
    record nobody else may see is a 404, as a private design is."""
    credential = Credential.objects.filter(pk=credential_id).first()
    if credential is None or not records.credential_visible(credential, viewer(request)):
        raise Http404("No such record.")
    response = _json(credential.document, cache="private, no-cache", public=False)
    response["Content-Disposition"] = f'inline; filename="{credential.kind}-{credential.pk}.json"'
    return response
