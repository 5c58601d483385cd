from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from hub.auth import Credential, require_write


class CredentialScope(BasePermission):
    """A read-only credential can read but never write, whatever its owner may do.

    The rule itself is `hub.auth.require_write`, the one git and Git LFS apply too.
    """

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS and isinstance(request.auth, Credential):
            require_write(request.auth)
        return True


# For views that need a logged-in user: replacing the default permission classes must
# not drop the credential scope check.
AUTHENTICATED = [IsAuthenticated, CredentialScope]
