"""drf-spectacular extensions for the hub's own authentication classes.

Imported by `HubConfig.ready`, which is how drf-spectacular finds extensions.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
