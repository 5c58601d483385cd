"""API of the inbox (hub.notifications): list, unread count, mark read, e-mail preferences.

The addresses are those the lab notifications had (/api/notifications/, …/read/?id=):
clients of the lab inbox keep working, and now see every kind.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import notifications
from hub.auth import signed_in_user
from hub.inputs import Input
from hub.models import Notification, NotificationKind
from hub.params import flag as param_flag
from hub.params import optional_id as param_id
from hub.permissions import AUTHENTICATED


class NotificationOutput(serializers.ModelSerializer):
    actor: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Notification
        fields = ["id", "kind", "subject", "body", "link", "actor", "created_at", "read_at"]


class PreferencesOutput(serializers.Serializer):
    email = serializers.DictField(
        child=serializers.BooleanField(),
        help_text="Every notification kind -> whether it is e-mailed to you.",
    )


class PreferencesInput(Input):
    email = serializers.DictField(
        child=serializers.BooleanField(),
        help_text=f"Kinds to change -> e-mail on or off; kinds: {', '.join(NotificationKind.values)}.",
    )


class NotificationListApi(generics.ListAPIView):
    """Your notifications, newest first; those about what you may no longer see are left out."""

    # Only for the schema generator, which reads the model from it; get_queryset decides.
    queryset = Notification.objects.none()
    serializer_class = NotificationOutput
    permission_classes = AUTHENTICATED

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        user = signed_in_user(self.request)
        return notifications.notifications_of(
            user, unread=param_flag(self.request.query_params, name="unread")
        )

    @extend_schema(parameters=[OpenApiParameter("unread", bool, description="Only the unread ones.")])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class NotificationCountApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=inline_serializer("UnreadCount", {"unread": serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        return Response({"unread": notifications.notifications_unread_count(signed_in_user(request))})


class NotificationReadApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        request=None,
        responses=inline_serializer("MarkedRead", {"marked": serializers.IntegerField()}),
        parameters=[
            OpenApiParameter(
                "id", {"type": "integer", "minimum": 1}, description="One notification; all if absent."
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request)
        notification_id = param_id(request.query_params, name="id")
        return Response(
            {"marked": notifications.notification_mark_read(user=user, notification_id=notification_id)}
        )


class NotificationPreferencesApi(APIView):
    permission_classes = AUTHENTICATED
    # A map of kinds to booleans: JSON only (a form field holding JSON text would be read
    # leniently, and the fuzzer found a schema-violating body accepted that way).
    parser_classes = [JSONParser]

    @extend_schema(responses=PreferencesOutput)
    def get(self, request: Request) -> Response:
        return Response({"email": notifications.notification_preferences(signed_in_user(request))})

    @extend_schema(request=PreferencesInput, responses=PreferencesOutput)
    def patch(self, request: Request) -> Response:
        data = PreferencesInput(data=request.data)
        data.is_valid(raise_exception=True)
        chosen = notifications.notification_preferences_set(
            user=signed_in_user(request), email=data.validated_data["email"]
        )
        return Response({"email": chosen})
