"""What every designs API view shares: the design named in the URL, as the requester may see it."""

from __future__ import annotations

from rest_framework.views import APIView

from designs import selectors
from designs.models import Design
from hub.exceptions import PermissionDenied


class DesignContextMixin(APIView):
    """Loads the design named in the URL, as the requester may see it (else 404)."""

    def get_design(self) -> Design:
        if not hasattr(self, "_design"):
            self._design = selectors.design_get(
                user=self.request.user, owner=self.kwargs["owner"], slug=self.kwargs["slug"]
            )
        return self._design

    def require_writer(self, design: Design) -> None:
        if not selectors.design_can_write(design, self.request.user):
            raise PermissionDenied(f"You cannot write to {design.full_name}.")

    def require_owner(self, design: Design) -> None:
        if design.owner_id != self.request.user.pk:
            raise PermissionDenied(f"Only {design.owner.username} can do this.")
