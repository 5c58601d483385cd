"""API of the hub app: who am I, and personal access tokens."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import services
from hub.auth import api_credential, signed_in_user
from hub.inputs import Input
from hub.models import AccessToken
from hub.permissions import AUTHENTICATED


class UserOutput(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.CharField(source="get_full_name")
    email = serializers.EmailField()


class TokenOutput(serializers.ModelSerializer):
    class Meta:
        model = AccessToken
        fields = ["id", "name", "scope", "hint", "created_at", "last_used_at", "expires_at", "revoked_at"]


class TokenCreateInput(Input):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=AccessToken.Scope.choices, default=AccessToken.Scope.WRITE)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class TokenCreatedOutput(TokenOutput):
    token = serializers.CharField(help_text="The token itself. Shown once; store it now.")

    class Meta(TokenOutput.Meta):
        fields = [*TokenOutput.Meta.fields, "token"]


class MeApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=UserOutput)
    def get(self, request: Request) -> Response:
        return Response(UserOutput(signed_in_user(request)).data)


class TokenListApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=TokenOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(TokenOutput(signed_in_user(request).access_tokens.all(), many=True).data)

    @extend_schema(request=TokenCreateInput, responses={201: TokenCreatedOutput})
    def post(self, request: Request) -> Response:
        data = TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.token_create(
            user=signed_in_user(request), credential=api_credential(request), **data.validated_data
        )
        # The raw value is never stored, so it is added to this one answer only.
        return Response({**TokenOutput(token).data, "token": raw}, status=201)


class TokenDetailApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        services.token_revoke(user=signed_in_user(request), token_id=token_id)
        return Response(status=204)
