"""API of a person's account: password change and reset, e-mail change, deletion.

The same services as the account pages (hub.accounts). Every change asks for the current
password, whatever the request's credential; the two reset endpoints take no credential
at all and are throttled per client address, so they cannot be used to flood an inbox.
"""

from __future__ import annotations

from django.http import HttpRequest
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from hub import accounts
from hub.api import UserOutput
from hub.auth import signed_in_user
from hub.permissions import AUTHENTICATED, CredentialScope
from hub.schema import errors

DetailOutput = inline_serializer("Detail", {"detail": serializers.CharField()})


class PasswordChangeInput(serializers.Serializer):
    current_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False)


class EmailChangeInput(serializers.Serializer):
    current_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    new_email = serializers.EmailField(max_length=254)


class EmailConfirmInput(serializers.Serializer):
    token = serializers.CharField(max_length=1000)


class AccountDeleteInput(serializers.Serializer):
    current_password = serializers.CharField(max_length=4096, trim_whitespace=False)
    confirm_username = serializers.CharField(max_length=150, help_text="Your username, typed again.")


class PasswordResetInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmInput(serializers.Serializer):
    uid = serializers.CharField(max_length=100, help_text="The first part of the link's path.")
    token = serializers.CharField(max_length=100, help_text="The second part of the link's path.")
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _root(request: Request) -> str:
    return request.build_absolute_uri("/")


def _http(request: Request) -> HttpRequest:
    # DRF's documented handle on the Django request it wraps: django-axes, which counts
    # the current-password checks as sign-in attempts, reads and marks that one.
    return request._request


class PasswordChangeApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=PasswordChangeInput, responses={204: None, **errors(429)})
    def post(self, request: Request) -> Response:
        accounts.password_change(
            user=signed_in_user(request), request=_http(request), **_valid(PasswordChangeInput, request)
        )
        return Response(status=204)


class EmailChangeApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=EmailChangeInput, responses={202: DetailOutput, **errors(429)})
    def post(self, request: Request) -> Response:
        data = _valid(EmailChangeInput, request)
        accounts.email_change_request(
            user=signed_in_user(request), request=_http(request), request_root=_root(request), **data
        )
        return Response(
            {"detail": f"A confirmation link was sent to {data['new_email']}."},
            status=202,
        )


class EmailConfirmApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=EmailConfirmInput, responses={200: UserOutput})
    def post(self, request: Request) -> Response:
        user = accounts.email_change_confirm(
            user=signed_in_user(request), **_valid(EmailConfirmInput, request)
        )
        return Response(UserOutput(user).data)


class AccountDeleteApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=AccountDeleteInput, responses={204: None, **errors(429)})
    def post(self, request: Request) -> Response:
        accounts.account_delete(
            user=signed_in_user(request), request=_http(request), **_valid(AccountDeleteInput, request)
        )
        return Response(status=204)


class PasswordResetApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny, CredentialScope]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "password-reset"

    @extend_schema(request=PasswordResetInput, responses={202: DetailOutput}, auth=[])
    def post(self, request: Request) -> Response:
        accounts.password_reset_send(request_root=_root(request), **_valid(PasswordResetInput, request))
        # The same answer whether or not an account uses the address.
        return Response(
            {"detail": "If an account uses that address, a reset link is on its way."}, status=202
        )


class PasswordResetConfirmApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny, CredentialScope]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "password-reset"

    @extend_schema(request=PasswordResetConfirmInput, responses={204: None}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(PasswordResetConfirmInput, request)
        accounts.password_reset_confirm(
            uidb64=data["uid"], token=data["token"], new_password=data["new_password"]
        )
        return Response(status=204)
