"""The REST API of pull mirrors and push mirrors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs import selectors
from designs.api.base import DesignContextMixin
from designs.serializers import (
    MirrorCreatedOutput,
    MirrorCreateInput,
    PullMirrorOutput,
    PullMirrorUpdateInput,
    PushMirrorInput,
    PushMirrorOutput,
    PushMirrorUpdateInput,
)
from designs.services import mirrors
from hub.auth import signed_in_user
from hub.exceptions import NotFound
from hub.permissions import AUTHENTICATED
from hub.schema import errors

# -- mirrors ------------------------------------------------------------------------------


def _for_owner(design, request: Request) -> dict:
    """A mirror's error text (the remote's words) is shown to the design's owner only."""
    return {"show_remote_text": request.user.is_authenticated and design.owner_id == request.user.pk}


class MirrorCreateApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=MirrorCreateInput, responses={201: MirrorCreatedOutput, **errors(409)})
    def post(self, request: Request) -> Response:
        data = MirrorCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        design = mirrors.mirror_create(owner=signed_in_user(request), **data.validated_data)
        out = {"design": design, "mirror": selectors.design_mirror(design)}
        return Response(MirrorCreatedOutput(out, context={"request": request}).data, status=201)


class PullMirrorApi(DesignContextMixin, APIView):
    def _mirror(self):
        mirror = selectors.design_mirror(self.get_design())
        if mirror is None:
            raise NotFound(f"{self.get_design().full_name} is not a mirror.")
        return mirror

    @extend_schema(responses=PullMirrorOutput)
    def get(self, request: Request, owner: str, slug: str) -> Response:
        return Response(PullMirrorOutput(self._mirror(), context=_for_owner(self.get_design(), request)).data)

    @extend_schema(request=PullMirrorUpdateInput, responses=PullMirrorOutput)
    def patch(self, request: Request, owner: str, slug: str) -> Response:
        data = PullMirrorUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        mirror = mirrors.mirror_update(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(PullMirrorOutput(mirror, context=_for_owner(self.get_design(), request)).data)

    @extend_schema(
        responses={204: None}, description="Stop mirroring: the design keeps its content and accepts commits."
    )
    def delete(self, request: Request, owner: str, slug: str) -> Response:
        mirrors.mirror_stop(design=self.get_design(), user=signed_in_user(request))
        return Response(status=204)


class PullMirrorRefreshApi(DesignContextMixin, APIView):
    @extend_schema(
        request=None,
        responses={200: PullMirrorOutput, **errors(409)},
        description="Refresh now and answer with the outcome (`last_error` says why it failed); 409 if one is running.",
    )
    def post(self, request: Request, owner: str, slug: str) -> Response:
        mirror = mirrors.mirror_refresh_now(design=self.get_design(), user=signed_in_user(request))
        return Response(PullMirrorOutput(mirror, context=_for_owner(self.get_design(), request)).data)


class PushMirrorListApi(DesignContextMixin, APIView):
    @extend_schema(responses={200: PushMirrorOutput(many=True), **errors(403)})
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        self.require_owner(design)
        return Response(PushMirrorOutput(selectors.push_mirrors_of(design), many=True).data)

    @extend_schema(request=PushMirrorInput, responses={201: PushMirrorOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = PushMirrorInput(data=request.data)
        data.is_valid(raise_exception=True)
        mirror = mirrors.push_mirror_add(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(PushMirrorOutput(mirror).data, status=201)


class PushMirrorDetailApi(DesignContextMixin, APIView):
    @extend_schema(request=PushMirrorUpdateInput, responses=PushMirrorOutput)
    def patch(self, request: Request, owner: str, slug: str, mirror_id: int) -> Response:
        data = PushMirrorUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        mirror = mirrors.push_mirror_update(
            design=self.get_design(), user=signed_in_user(request), mirror_id=mirror_id, **data.validated_data
        )
        return Response(PushMirrorOutput(mirror).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, mirror_id: int) -> Response:
        mirrors.push_mirror_remove(
            design=self.get_design(), user=signed_in_user(request), mirror_id=mirror_id
        )
        return Response(status=204)


class PushMirrorPushApi(DesignContextMixin, APIView):
    @extend_schema(
        request=None, responses=PushMirrorOutput, description="Push now and answer with the outcome."
    )
    def post(self, request: Request, owner: str, slug: str, mirror_id: int) -> Response:
        mirror = mirrors.push_mirror_push_now(
            design=self.get_design(), user=signed_in_user(request), mirror_id=mirror_id
        )
        return Response(PushMirrorOutput(mirror).data)
