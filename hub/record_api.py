"""The API of signed records: check any record, this hub's or another's."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from hub import records
from hub.auth import viewer
from hub.exceptions import PermissionDenied, ValidationError
from hub.inputs import Input
from hub.permissions import CredentialScope


class VerifyInput(Input):
    record = serializers.JSONField(help_text="The signed record (a verifiable credential) as issued.")
    online = serializers.BooleanField(
        default=False,
        help_text="Also read the issuer's revocation list and, for a did:web issuer, its published "
        "keys. Signed-in callers only: it makes the hub fetch from the issuer.",
    )


class CheckOutput(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class VerificationOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[
            "verified",
            "tampered",
            "unknown-key",
            "revoked",
            "expired",
            "not-yet-valid",
            "malformed",
            "status-unavailable",
        ]
    )
    verified = serializers.BooleanField()
    issuer = serializers.CharField()
    subject = serializers.CharField()
    checks = CheckOutput(many=True)


class VerifyApi(APIView):
    """Offline: the signature against a key the issuer is trusted to hold, the validity
    period. Online: also whether the issuer has revoked it. A record that fails is still a
    200: the answer says how it failed."""

    permission_classes = [AllowAny, CredentialScope]
    parser_classes = [JSONParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "record-verify"

    @extend_schema(
        request=VerifyInput,
        responses={
            200: VerificationOutput,
            403: OpenApiResponse(description="Online checks need a sign-in."),
        },
        operation_id="records_verify",
    )
    def post(self, request: Request) -> Response:
        data = VerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["online"] and not viewer(request).is_authenticated:
            raise PermissionDenied("Sign in to check a record online (the hub fetches from its issuer).")
        record = data.validated_data["record"]
        if record is None:
            raise ValidationError("Send the record to check.", field="record")
        report = records.credential_verify(record, online=data.validated_data["online"])
        return Response(report.as_dict())
