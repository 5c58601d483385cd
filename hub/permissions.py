from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from hub.models import AccessToken


class TokenScope(BasePermission):
    """A read-only token can read but never write, whatever its owner may do."""

    message = "This token is read-only."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if isinstance(token, AccessToken) and token.scope == AccessToken.Scope.READ:
            return request.method in SAFE_METHODS
        return True


# For views that need a logged-in user: replacing the default permission classes must
# not drop the token scope check.
AUTHENTICATED = [IsAuthenticated, TokenScope]
