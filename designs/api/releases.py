"""The REST API of releases (docs/releases.md): list them and read one with its notes and
files; attach a file (multipart), delete one, download one. Releases themselves are made
and deleted as tags (`…/tags/`, designs/api/designs.py).

The shapes live here rather than in designs/serializers.py: only these views use them.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs import selectors
from designs.api.base import DesignContextMixin
from designs.models import Design, ReleaseAsset
from designs.paths import content_type_for
from designs.rawfiles import serve_release_asset
from designs.serializers import PersonOutput
from designs.services import releases
from hub import records
from hub.auth import signed_in_user
from hub.inputs import Input
from hub.schema import errors


def _address(name: str, *args: str) -> str:
    return records.hub_root() + reverse(name, args=args).lstrip("/")


class ReleaseAssetOutput(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField(help_text="In bytes.")
    sha256 = serializers.CharField(help_text="Of the content: check a download against it.")
    content_type = serializers.CharField()
    uploaded_by = serializers.CharField(source="uploaded_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    download_url = serializers.SerializerMethodField(help_text="The content, for browsers and scripts.")
    api_url = serializers.SerializerMethodField(
        help_text="The same content through the API (a token works here); DELETE removes the file."
    )

    def get_download_url(self, asset: ReleaseAsset) -> str:
        design = self.context["design"]
        return _address("design-release-asset", design.owner.username, design.slug, asset.tag, asset.name)

    def get_api_url(self, asset: ReleaseAsset) -> str:
        design = self.context["design"]
        return _address("api-design-release-asset", design.owner.username, design.slug, asset.tag, asset.name)


class ReleaseOutput(serializers.Serializer):
    """A release as `selectors.Release` holds it."""

    name = serializers.CharField(source="tag.name")
    target = serializers.CharField(source="tag.target", help_text="The commit released.")
    notes = serializers.CharField(source="tag.message", help_text="Markdown, as written.")
    notes_html = serializers.CharField(help_text="The notes as sanitised HTML.")
    tagger = PersonOutput(source="tag.tagger", allow_null=True)
    tagged_at = serializers.DateTimeField(source="tag.tagged_at", allow_null=True)
    assets = ReleaseAssetOutput(many=True)
    html_url = serializers.SerializerMethodField(help_text="The release's page.")
    okh_url = serializers.SerializerMethodField(help_text="The Open Know-How manifest of this release.")

    def get_html_url(self, release: selectors.Release) -> str:
        design = self.context["design"]
        return _address("design-release", design.owner.username, design.slug, release.tag.name)

    def get_okh_url(self, release: selectors.Release) -> str:
        design = self.context["design"]
        return _address("design-release-okh", design.owner.username, design.slug, release.tag.name)


class ReleaseAssetInput(Input):
    file = serializers.FileField(
        max_length=None, help_text="The content; at most FABHUB_RELEASE_ASSET_MAX_BYTES (200 MB by default)."
    )
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="The file's name in the release; default: the uploaded file's name. At most 255 "
        "characters, no '/', '\\' or control characters.",
    )


class ReleaseListApi(DesignContextMixin, ListAPIView):
    """The releases, newest first, a page at a time; notes are rendered for that page only."""

    serializer_class = ReleaseOutput
    # Only for the schema generator, which reads a model from it (the path's owner and
    # slug are a design's): the releases are the design's tags, listed in `list`.
    queryset = Design.objects.none()

    def list(self, request: Request, *args, **kwargs) -> Response:
        design = self.get_design()
        page = self.paginate_queryset(selectors.release_tags(design)) or []
        rows = selectors.design_releases(design, page)
        return self.get_paginated_response(ReleaseOutput(rows, many=True, context={"design": design}).data)


class ReleaseDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses=ReleaseOutput)
    def get(self, request: Request, owner: str, slug: str, tag: str) -> Response:
        design = self.get_design()
        release = selectors.design_release(design, tag)
        return Response(ReleaseOutput(release, context={"design": design}).data)


class ReleaseAssetListApi(DesignContextMixin, APIView):
    parser_classes = [MultiPartParser]
    # hub.uploads stops a file over this limit while it streams in.
    upload_limit_setting = "FABHUB_RELEASE_ASSET_MAX_BYTES"

    @extend_schema(responses=ReleaseAssetOutput(many=True))
    def get(self, request: Request, owner: str, slug: str, tag: str) -> Response:
        design = self.get_design()
        release = selectors.design_release(design, tag)
        return Response(ReleaseAssetOutput(release.assets, many=True, context={"design": design}).data)

    @extend_schema(request=ReleaseAssetInput, responses={201: ReleaseAssetOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str, tag: str) -> Response:
        design = self.get_design()
        user = signed_in_user(request)
        data = ReleaseAssetInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        name = data.validated_data["name"] or upload.name or ""
        asset = releases.release_asset_upload(
            design=design,
            user=user,
            tag=tag,
            name=name,
            content=upload,
            content_type=content_type_for(name),
            size=upload.size,
        )
        return Response(ReleaseAssetOutput(asset, context={"design": design}).data, status=201)


class ReleaseAssetDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses={(200, "*/*"): OpenApiTypes.BINARY})
    def get(self, request: Request, owner: str, slug: str, tag: str, name: str):
        design = self.get_design()
        return serve_release_asset(request, selectors.release_asset_get(design, tag=tag, name=name))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, tag: str, name: str) -> Response:
        design = self.get_design()
        releases.release_asset_delete(design=design, user=signed_in_user(request), tag=tag, name=name)
        return Response(status=204)
