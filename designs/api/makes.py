"""The REST API of makes: list and add the makes of a design, delete one's own, list a
person's. Each make carries the address of its signed record (`credential_url`).

The shapes live here rather than in designs/serializers.py: only these views use them.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs import selectors, services
from designs.api.base import DesignContextMixin
from designs.models import Make
from designs.services.makes import MAX_NOTES_CHARS, MAX_WHERE_CHARS
from hub import records
from hub.auth import signed_in_user
from hub.inputs import Input
from hub.models import User
from hub.schema import errors


class MakeOutput(serializers.Serializer):
    """A make (with its signed record), as `selectors.make_rows` gives it."""

    id = serializers.IntegerField(source="make.pk")
    design = serializers.CharField(source="make.design.full_name")
    commit = serializers.CharField(source="make.commit_sha")
    path = serializers.CharField(source="make.path")
    maker = serializers.CharField(source="make.maker.username")
    outcome = serializers.ChoiceField(source="make.outcome", choices=Make.Outcome.choices)
    where = serializers.CharField(source="make.where")
    notes = serializers.CharField(source="make.notes")
    made_on = serializers.DateField(source="make.made_on")
    created_at = serializers.DateTimeField(source="make.created_at")
    photo_url = serializers.SerializerMethodField(help_text="The photo (a JPEG the hub re-encoded), or null.")
    credential_url = serializers.SerializerMethodField(
        help_text="The signed record of the make (a verifiable credential), or null if it has none."
    )

    def get_photo_url(self, row: selectors.MakeRow) -> str | None:
        make = row.make
        if not make.photo:
            return None
        path = reverse("design-make-photo", args=[make.design.owner.username, make.design.slug, make.pk])
        return records.hub_root() + path.lstrip("/")

    def get_credential_url(self, row: selectors.MakeRow) -> str | None:
        return records.credential_url(row.credential) if row.credential else None


class MakeCreateInput(Input):
    commit = serializers.CharField(
        max_length=255, help_text="The branch, tag or commit made from; the make records its commit."
    )
    path = serializers.CharField(
        max_length=4096, required=False, allow_blank=True, default="", help_text="The part made, if one file."
    )
    photo = serializers.FileField(
        required=False,
        help_text="JPEG, PNG, WebP or GIF, at most 10 MB and 40 megapixels; stored re-encoded without metadata.",
    )
    outcome = serializers.ChoiceField(
        choices=Make.Outcome.choices, required=False, default=Make.Outcome.WORKS
    )
    made_on = serializers.DateField(required=False, help_text="Default: today.")
    where = serializers.CharField(max_length=MAX_WHERE_CHARS, required=False, allow_blank=True, default="")
    notes = serializers.CharField(max_length=MAX_NOTES_CHARS, required=False, allow_blank=True, default="")


class MakeListApi(DesignContextMixin, generics.ListAPIView):
    # Photos travel in multipart only.
    parser_classes = [MultiPartParser]
    serializer_class = MakeOutput

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Make.objects.none()
        return Make.objects.filter(design=self.get_design()).select_related("maker", "design__owner")

    @extend_schema(responses=MakeOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None  # the API always pages
        return self.get_paginated_response(MakeOutput(selectors.make_rows(page), many=True).data)

    @extend_schema(request=MakeCreateInput, responses={201: MakeOutput})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        user = signed_in_user(request)
        data = MakeCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        make = services.make_create(
            design=design,
            maker=user,
            commit_sha=selectors.design_resolve(design, values["commit"].strip()),
            path=values["path"],
            photo=values.get("photo"),
            notes=values["notes"],
            where=values["where"],
            outcome=values["outcome"],
            made_on=values.get("made_on"),
        )
        return Response(MakeOutput(selectors.make_rows([make])[0]).data, status=201)


class MakeDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses=MakeOutput)
    def get(self, request: Request, owner: str, slug: str, make_id: int) -> Response:
        make = selectors.make_get(self.get_design(), make_id)
        return Response(MakeOutput(selectors.make_rows([make])[0]).data)

    @extend_schema(responses={204: None, **errors(403)})
    def delete(self, request: Request, owner: str, slug: str, make_id: int) -> Response:
        make = selectors.make_get(self.get_design(), make_id)
        services.make_delete(make=make, actor=signed_in_user(request))
        return Response(status=204)


class PersonMakeListApi(generics.ListAPIView):
    """What a person made, of the designs the requester may see."""

    serializer_class = MakeOutput

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Make.objects.none()
        person = get_object_or_404(User, username=self.kwargs["username"], is_active=True)
        return selectors.makes_by_person(person, viewer=self.request.user)

    @extend_schema(responses=MakeOutput(many=True))
    def get(self, request: Request, username: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None
        return self.get_paginated_response(MakeOutput(selectors.make_rows(page), many=True).data)
