"""The lab agent protocol (docs/agent.md): two endpoints an agent calls, nothing else.

Plain Django views rather than DRF: they are a machine-to-machine protocol with one
caller, answered hundreds of times a second on a hub serving many labs, so they skip
DRF's content negotiation and serializers and stay a few milliseconds each. They read
only the agent's bearer token (through `hub.auth`, the one credential resolver), never a
session cookie, so they need no CSRF token.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from hub.auth import BadCredentials, agent_credential_from_header, client_ip
from hub.exceptions import HubError
from machines.models import LabAgent
from machines.printing import agents

logger = logging.getLogger(__name__)

MAX_SYNC_BYTES = 1024 * 1024
PROTOCOL = "fabhub-agent/1"


def _agent(request: HttpRequest) -> LabAgent:
    credential = agent_credential_from_header(request.headers.get("Authorization", ""))
    assert isinstance(credential.agent, LabAgent)
    return credential.agent


def _refused(status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _unauthorised() -> JsonResponse:
    response = _refused(401, "Invalid or revoked lab agent token.")
    response["WWW-Authenticate"] = 'Bearer realm="fabhub-agent"'
    return response


@csrf_exempt
@require_POST
def sync(request: HttpRequest) -> HttpResponse:
    """Reports in (numbered, applied in order), open commands out."""
    try:
        agent = _agent(request)
    except BadCredentials:
        logger.warning("agent sync with a bad token from %s", client_ip(request))
        return _unauthorised()
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _refused(400, "Content-Length must be a number.")
    if length > MAX_SYNC_BYTES:
        return _refused(413, f"A sync is at most {MAX_SYNC_BYTES} bytes.")
    try:
        body = json.loads(request.read(MAX_SYNC_BYTES + 1) or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        logger.warning("lab agent %s sent a sync that is not JSON", agent.pk)
        return _refused(400, "The sync body must be JSON.")
    try:
        result = agents.agent_sync(agent=agent, request=agents.parse_sync(body), address=client_ip(request))
    except agents.SequenceGap as gap:
        logger.warning("lab agent %s: %s", agent.pk, gap.message)
        return _refused(409, gap.message, expected_seq=gap.expected, accepted_through=gap.accepted_through)
    except HubError as exc:
        logger.warning("lab agent %s sent a refused sync: %s", agent.pk, exc.message)
        return _refused(exc.status, exc.message)
    return JsonResponse(
        {
            "protocol": PROTOCOL,
            "accepted_through": result.accepted_through,
            "refused": result.refused,
            "poll_seconds": settings.FABHUB_AGENT_POLL_S,
            "printers": result.printers,
            "commands": result.commands,
        }
    )


@require_GET
def command_gcode(request: HttpRequest, command_id: uuid.UUID) -> HttpResponseBase:
    """The G-code of one of the agent's open start commands, with its sha256 in a header."""
    try:
        agent = _agent(request)
    except BadCredentials:
        logger.warning("agent download with a bad token from %s", client_ip(request))
        return _unauthorised()
    try:
        path, command = agents.agent_gcode(agent=agent, command_id=command_id)
    except HubError as exc:
        logger.warning("lab agent %s asked for G-code it may not have: %s", agent.pk, command_id)
        return _refused(exc.status, exc.message)
    response = FileResponse(path.open("rb"), content_type="text/x.gcode")
    response["Content-Length"] = str(path.stat().st_size)
    response["X-Content-SHA256"] = command.gcode_sha256
    return response
