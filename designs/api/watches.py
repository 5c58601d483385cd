"""Watching and starring a design (designs/services/watches.py): what the requester chose,
and the counts anybody who may see the design may read."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from designs import selectors
from designs.api.base import DesignContextMixin
from designs.models import Design, Watch
from designs.services import watches
from hub.auth import signed_in_user
from hub.inputs import Input
from hub.models import User
from hub.schema import errors


class WatchOutput(serializers.Serializer):
    level = serializers.ChoiceField(
        choices=Watch.Level.choices,
        allow_null=True,
        help_text="Yours; null when you chose none (an owner then watches with `all`) or are not signed in.",
    )
    watchers = serializers.IntegerField(help_text="People watching it (not ignoring it).")


class WatchInput(Input):
    level = serializers.ChoiceField(choices=Watch.Level.choices)


class StarOutput(serializers.Serializer):
    starred = serializers.BooleanField(help_text="Whether you starred it.")
    stars = serializers.IntegerField()


def _signed_in(request: Request) -> User:
    if not request.user.is_authenticated:
        raise NotAuthenticated("Log in or use a token first.")
    return signed_in_user(request)


def _watch_answer(design: Design, request: Request) -> Response:
    watch = selectors.watch_of(design, request.user)
    counts = selectors.social_counts([design], viewer=request.user)[design.pk]
    return Response({"level": watch.level if watch else None, "watchers": counts.watchers})


def _star_answer(design: Design, request: Request) -> Response:
    counts = selectors.social_counts([design], viewer=request.user)[design.pk]
    return Response({"starred": selectors.has_starred(design, request.user), "stars": counts.stars})


class WatchApi(DesignContextMixin):
    parser_classes = [JSONParser]

    @extend_schema(responses=WatchOutput)
    def get(self, request: Request, owner: str, slug: str) -> Response:
        return _watch_answer(self.get_design(), request)

    @extend_schema(request=WatchInput, responses={200: WatchOutput, **errors(401)})
    def put(self, request: Request, owner: str, slug: str) -> Response:
        user = _signed_in(request)
        design = self.get_design()
        data = WatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        watches.watch_set(design=design, user=user, level=data.validated_data["level"])
        return _watch_answer(design, request)

    @extend_schema(responses={200: WatchOutput, **errors(401)})
    def delete(self, request: Request, owner: str, slug: str) -> Response:
        user = _signed_in(request)
        design = self.get_design()
        watches.watch_remove(design=design, user=user)
        return _watch_answer(design, request)


class StarApi(DesignContextMixin):
    @extend_schema(responses=StarOutput)
    def get(self, request: Request, owner: str, slug: str) -> Response:
        return _star_answer(self.get_design(), request)

    @extend_schema(request=None, responses={200: StarOutput, **errors(401)})
    def put(self, request: Request, owner: str, slug: str) -> Response:
        user = _signed_in(request)
        design = self.get_design()
        watches.star_add(design=design, user=user)
        return _star_answer(design, request)

    @extend_schema(responses={200: StarOutput, **errors(401)})
    def delete(self, request: Request, owner: str, slug: str) -> Response:
        user = _signed_in(request)
        design = self.get_design()
        watches.star_remove(design=design, user=user)
        return _star_answer(design, request)
