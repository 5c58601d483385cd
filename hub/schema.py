"""The OpenAPI schema: the hub's authentication classes, and the error answers.

Imported by `HubConfig.ready`, which is how drf-spectacular finds extensions; `HubAutoSchema`
is REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS


class SessionCredentialScheme(SessionScheme):
    # drf-spectacular matches the exact class, so the session subclass that carries a
    # Credential needs its own entry to stay declared as cookie authentication.
    target_class = "hub.auth.SessionCredentialAuthentication"
    priority = 0


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """A personal access token, as `hub.auth.credential_from_header` reads it.

    Two schemes, either one enough: the token as a bearer (`Token <token>` is accepted as
    a synonym, which OpenAPI cannot spell), and Basic with the owner's username and the
    token as the password — what git and git-lfs send. A password never works.
    """

    target_class = "hub.auth.AccessTokenAuthentication"
    name = ["tokenAuth", "tokenBasicAuth"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        # Alternatives (OR), not a pair that must be sent together (AND).
        return [{"tokenAuth": []}, {"tokenBasicAuth": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A personal access token: `Authorization: Bearer <token>` "
                "(or `Token <token>`). Read tokens may only read.",
            },
            {
                "type": "http",
                "scheme": "basic",
                "description": "Your username and a personal access token as the password, "
                "as git sends them. A password is refused.",
            },
        ]


# -- error responses -----------------------------------------------------------------------


class ErrorOutput(serializers.Serializer):
    """What `hub.exceptions.api_exception_handler` answers for a refused request."""

    detail = serializers.CharField(help_text="What went wrong, in words a person can act on.")
    code = serializers.CharField(
        required=False, help_text="A stable name for the kind of error: `invalid`, `conflict`, `too_large`…"
    )

    class Meta:
        # Some errors carry more, e.g. `limit` on a 413 and `current_head` on a branch's 409.
        ref_name = "Error"


ERROR_DESCRIPTIONS = {
    400: "The request is malformed or breaks a rule; the body says which field or rule.",
    401: "No credentials where they are required, or a token that is invalid, expired or revoked.",
    403: "The credential may not do this: a read-only token writing, or not a member, manager or writer.",
    404: "Nothing by that name, or nothing the requester may see.",
    409: "The state does not allow it right now (a name taken, a branch moved, a job no longer waiting).",
    413: "The request body or an uploaded file is over the hub's size limit.",
    429: (
        "Too many requests of this kind from this address (Retry-After), or too many wrong "
        "passwords for this account from this address (a sign-in lockout); try again later."
    ),
}

# DRF's own validation answers one list of messages per field (nested for nested input)
# instead of one `detail`.
FIELD_ERRORS_SCHEMA = {
    "type": "object",
    "description": "Messages per input field: `{field: [message, …]}`.",
    "additionalProperties": {"oneOf": [{"type": "array", "items": {}}, {"type": "object"}]},
    "minProperties": 1,
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses a view declares itself, e.g. `responses={201: X, **errors(409)}`,
    where the rules of `HubAutoSchema` cannot tell (a 409, a 403 on a read)."""
    return {
        status: OpenApiResponse(ErrorOutput, description=ERROR_DESCRIPTIONS[status]) for status in statuses
    }


class HubAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the error answers an operation can really give.

    From what the operation has: 400 and 413 with a request body (413 from
    `hub.middleware.RequestSizeLimitMiddleware`), 400 with query parameters, 401 for any
    operation that reads a token (a wrong one is a 401 everywhere), 403 for writes (a
    read-only token, CSRF on a session), 404 with path parameters or a page number. A
    409, or a 403 on a read, only the view knows: it declares them with `errors()`.
    """

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        statuses = set()
        if has_body or any(parameter["in"] == "query" for parameter in parameters):
            statuses.add(400)
        if has_body:
            statuses.add(413)
        if self.view.get_authenticators():
            statuses.add(401)
        if self.method not in SAFE_METHODS:
            statuses.add(403)
        # A page past the last one is a 404 too ("Invalid page.").
        if any(parameter["in"] == "path" or parameter["name"] == "page" for parameter in parameters):
            statuses.add(404)
        # Throttled views (DRF throttle_classes) answer 429 past their rate.
        if getattr(self.view, "throttle_classes", None):
            statuses.add(429)
        for status in sorted(statuses):
            responses.setdefault(str(status), self._error_response(status))
        if "400" in responses:
            responses["400"] = self._bad_request_response(responses["400"])
        return operation

    def _map_serializer(self, serializer: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and getattr(serializer, "refuse_empty", False):
            schema["minProperties"] = 1  # hub.inputs.Input.refuse_empty
        return schema

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # drf-spectacular leaves out that a list which may not be empty has one item at least.
        if isinstance(field, serializers.ListField) and not field.allow_empty and "minItems" not in schema:
            schema["minItems"] = 1
        return schema

    def _error_response(self, status: int) -> dict[str, Any]:
        return self._get_response_for_code(errors(status)[status], str(status))

    def _bad_request_response(self, response: dict[str, Any]) -> dict[str, Any]:
        # A 400 is either shape: the handler's `detail` or DRF's messages per field.
        error = self.resolve_serializer(ErrorOutput, "response").ref
        self.registry.register_on_missing(
            ResolvedComponent(
                name="FieldErrors",
                type=ResolvedComponent.SCHEMA,
                object="FieldErrors",
                schema=FIELD_ERRORS_SCHEMA,
            )
        )
        field_errors = {"$ref": "#/components/schemas/FieldErrors"}
        for media in response.get("content", {}).values():
            if media.get("schema") == error:
                media["schema"] = {"oneOf": [error, field_errors]}
        return response
