"""drf-spectacular extensions for the hub's own authentication classes.

Imported by `HubConfig.ready`, which is how drf-spectacular finds extensions.
"""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme


class SessionCredentialScheme(SessionScheme):
    # drf-spectacular matches the exact class, so the session subclass that carries a
    # Credential needs its own entry to stay declared as cookie authentication.
    target_class = "hub.auth.SessionCredentialAuthentication"
    priority = 0
