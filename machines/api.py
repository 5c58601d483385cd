"""The labs REST API: validate input → call one service or selector → describe output."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.auth import signed_in_user
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.models import User
from hub.params import choice as param_choice
from hub.params import flag as param_flag
from hub.params import positive_int as param_positive_int
from hub.permissions import AUTHENTICATED
from hub.schema import errors
from machines import selectors, services, timeline
from machines.models import Booking, Closure, Lab, Machine, Qualification
from machines.serializers import (
    BookingCreateInput,
    BookingOutput,
    ClosureInput,
    ClosureOutput,
    FeedOutput,
    FirstFreeSlotOutput,
    LabCreateInput,
    LabOutput,
    LabUpdateInput,
    MachineAvailabilityOutput,
    MachineCreateInput,
    MachineOutput,
    MachineStatusInput,
    MachineUpdateInput,
    MaintenanceInput,
    MembershipOutput,
    MembershipUpdateInput,
    OpeningHoursInput,
    OpeningHoursItem,
    QualificationInput,
    QualificationOutput,
    ReasonInput,
)

# -- helpers -------------------------------------------------------------------------------


class LabContextMixin:
    """Loads the lab (and machine) named in the URL; labs are public, so 404 only if absent."""

    kwargs: dict[str, Any]  # the URL's arguments, set by the APIView this is mixed into

    def get_lab(self) -> Lab:
        if not hasattr(self, "_lab"):
            self._lab = selectors.lab_get(slug=self.kwargs["lab"])
        return self._lab

    def get_machine(self) -> Machine:
        if not hasattr(self, "_machine"):
            self._machine = selectors.machine_get(lab=self.get_lab(), slug=self.kwargs["machine"])
        return self._machine


# A date, or a time with its offset: what `_instant` reads, and what the schema says.
INSTANT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
)
INSTANT_SCHEMA = {"type": "string", "pattern": INSTANT_PATTERN}


def _instant(value: str | None, lab: Lab, name: str, *, default: datetime) -> datetime:
    """An aware datetime, or a date meaning local midnight in the lab; never a naive time."""
    if value is None:
        return default
    try:
        day = parse_date(value) if len(value) == 10 else None
    except ValueError:  # well formed, but no such day: 2026-02-30
        day = None
    if day is not None and re.match(INSTANT_PATTERN, value):
        return timeline.wall_clock(day, time(0), lab.zone)
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is not None and timezone.is_naive(parsed):
        raise ValidationError(
            f"'{name}' has no time zone: give an offset, e.g. 2026-03-28T10:00:00+01:00 or …Z."
        )
    # Django reads more spellings than the schema states (a space for the T, an hour of
    # one digit…); what the schema does not allow is refused like what cannot be read.
    if parsed is None or not re.match(INSTANT_PATTERN, value):
        raise ValidationError(
            f"'{name}' must be a date (2026-03-28) or a time with its offset (…T10:00+01:00)."
        )
    return parsed


def _range(request: Request, lab: Lab) -> tuple[datetime, datetime]:
    today = timeline.wall_clock(timezone.now().astimezone(lab.zone).date(), time(0), lab.zone)
    start = _instant(request.query_params.get("start"), lab, "start", default=today)
    end = _instant(request.query_params.get("end"), lab, "end", default=start + timedelta(days=7))
    selectors.check_range(start, end)
    return start, end


def _slots(intervals) -> list[dict]:
    return [{"start": s, "end": e, "minutes": round(timeline.minutes((s, e)))} for s, e in intervals]


RANGE_PARAMS = [
    OpenApiParameter(
        "start", INSTANT_SCHEMA, description="Date (local midnight) or time with offset; today if absent."
    ),
    OpenApiParameter(
        "end", INSTANT_SCHEMA, description="Date or time with offset; a week after start if absent."
    ),
]


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"There is no user {username!r}.")
    return user


# -- labs ----------------------------------------------------------------------------------


class LabListApi(generics.ListAPIView):
    serializer_class = LabOutput

    def get_queryset(self):
        return selectors.labs_visible_to(self.request.user).order_by("name")

    @extend_schema(request=LabCreateInput, responses={201: LabOutput, **errors(409)})
    def post(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in or use a token to create a lab.")
        data = LabCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        lab = services.lab_create(creator=signed_in_user(request), **data.validated_data)
        return Response(LabOutput(lab, context={"request": request}).data, status=201)


class LabDetailApi(LabContextMixin, APIView):
    @extend_schema(responses=LabOutput)
    def get(self, request: Request, lab: str) -> Response:
        return Response(LabOutput(self.get_lab(), context={"request": request}).data)

    @extend_schema(request=LabUpdateInput, responses=LabOutput)
    def patch(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        data = LabUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        updated = services.lab_update(lab=self.get_lab(), actor=user, **data.validated_data)
        return Response(LabOutput(updated, context={"request": request}).data)


class LabHoursApi(LabContextMixin, APIView):
    # A list of objects has no form encoding: JSON only, so the schema offers nothing else.
    parser_classes = [JSONParser]

    @extend_schema(responses=OpeningHoursItem(many=True))
    def get(self, request: Request, lab: str) -> Response:
        return Response(OpeningHoursItem(self.get_lab().opening_hours.all(), many=True).data)

    @extend_schema(request=OpeningHoursInput, responses=OpeningHoursItem(many=True))
    def put(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        data = OpeningHoursInput(data=request.data)
        data.is_valid(raise_exception=True)
        rows = services.lab_set_hours(
            lab=self.get_lab(),
            actor=user,
            hours=[(h["weekday"], h["opens"], h["closes"]) for h in data.validated_data["hours"]],
        )
        return Response(OpeningHoursItem(rows, many=True).data)


class ClosureListApi(LabContextMixin, APIView):
    @extend_schema(responses=ClosureOutput(many=True))
    def get(self, request: Request, lab: str) -> Response:
        rows = self.get_lab().closures.filter(end__gt=timezone.now())
        return Response(ClosureOutput(rows, many=True).data)

    @extend_schema(request=ClosureInput, responses={201: ClosureOutput})
    def post(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        data = ClosureInput(data=request.data)
        data.is_valid(raise_exception=True)
        closure, flagged = services.closure_create(lab=self.get_lab(), actor=user, **data.validated_data)
        return Response(
            {**ClosureOutput(closure).data, "flagged_bookings": [b.pk for b in flagged]}, status=201
        )


class ClosureDetailApi(LabContextMixin, APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, lab: str, closure_id: int) -> Response:
        user = signed_in_user(request)
        closure = get_object_or_404(Closure, pk=closure_id, lab=self.get_lab())
        services.closure_delete(closure=closure, actor=user)
        return Response(status=204)


class MemberListApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses={200: MembershipOutput(many=True), **errors(403)})
    def get(self, request: Request, lab: str) -> Response:
        """Managers see everyone (requests included); members see the members."""
        user = signed_in_user(request)
        the_lab = self.get_lab()
        role = selectors.lab_role(the_lab, user)
        selectors.require_member(the_lab, user)
        rows = selectors.lab_members(the_lab)
        if role != "manager":
            rows = rows.filter(status="active")
        return Response(MembershipOutput(rows, many=True).data)

    @extend_schema(request=None, responses={201: MembershipOutput})
    def post(self, request: Request, lab: str) -> Response:
        """Join the lab (or ask to, if its managers approve members)."""
        user = signed_in_user(request)
        membership = services.membership_join(lab=self.get_lab(), user=user)
        return Response(MembershipOutput(membership).data, status=201)


class MemberDetailApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=MembershipUpdateInput, responses={200: MembershipOutput, **errors(409)})
    def patch(self, request: Request, lab: str, username: str) -> Response:
        actor = signed_in_user(request)
        data = MembershipUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        the_lab, user = self.get_lab(), _user(username)
        if "approve" in data.validated_data:
            membership = services.membership_decide(
                lab=the_lab, actor=actor, user=user, approve=data.validated_data["approve"]
            )
            if membership is None:
                return Response(status=204)
        else:
            membership = services.membership_set_role(
                lab=the_lab, actor=actor, user=user, role=data.validated_data["role"]
            )
        return Response(MembershipOutput(membership).data)

    @extend_schema(responses={204: None, **errors(409)})
    def delete(self, request: Request, lab: str, username: str) -> Response:
        services.membership_remove(lab=self.get_lab(), actor=signed_in_user(request), user=_user(username))
        return Response(status=204)


# -- machines ------------------------------------------------------------------------------


class MachineListApi(LabContextMixin, APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=Machine.Kind.values)],
        responses=MachineOutput(many=True),
    )
    def get(self, request: Request, lab: str) -> Response:
        rows = self.get_lab().machines.select_related("lab").order_by("name")
        kind = param_choice(request.query_params, name="kind", choices=Machine.Kind.values)
        if kind:
            rows = rows.filter(kind=kind)
        return Response(MachineOutput(rows, many=True, context={"request": request}).data)

    @extend_schema(request=MachineCreateInput, responses={201: MachineOutput, **errors(409)})
    def post(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        data = MachineCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        machine = services.machine_create(
            lab=self.get_lab(), actor=user, photo=request.FILES.get("photo"), **data.validated_data
        )
        return Response(MachineOutput(machine, context={"request": request}).data, status=201)


class MachineDetailApi(LabContextMixin, APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses=MachineOutput)
    def get(self, request: Request, lab: str, machine: str) -> Response:
        return Response(MachineOutput(self.get_machine(), context={"request": request}).data)

    @extend_schema(request=MachineUpdateInput, responses=MachineOutput)
    def patch(self, request: Request, lab: str, machine: str) -> Response:
        user = signed_in_user(request)
        data = MachineUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        updated = services.machine_update(
            machine=self.get_machine(),
            actor=user,
            photo=request.FILES.get("photo"),
            **data.validated_data,
        )
        return Response(MachineOutput(updated, context={"request": request}).data)


class MachineStatusApi(LabContextMixin, APIView):
    @extend_schema(
        request=MachineStatusInput,
        responses=BookingOutput(many=True),
        description="Set the status. Answers the future bookings it flagged for a decision (cancel or keep).",
    )
    def post(self, request: Request, lab: str, machine: str) -> Response:
        user = signed_in_user(request)
        data = MachineStatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        rows = services.machine_set_status(machine=self.get_machine(), actor=user, **data.validated_data)
        return Response(BookingOutput(rows, many=True).data)


class MaintenanceApi(LabContextMixin, APIView):
    @extend_schema(request=MaintenanceInput, responses={201: BookingOutput, **errors(409)})
    def post(self, request: Request, lab: str, machine: str) -> Response:
        user = signed_in_user(request)
        data = MaintenanceInput(data=request.data)
        data.is_valid(raise_exception=True)
        window, cancelled = services.maintenance_block(
            machine=self.get_machine(), actor=user, **data.validated_data
        )
        return Response(
            {**BookingOutput(window).data, "cancelled_bookings": [b.pk for b in cancelled]}, status=201
        )


class MachineAvailabilityApi(LabContextMixin, APIView):
    @extend_schema(parameters=RANGE_PARAMS, responses=MachineAvailabilityOutput)
    def get(self, request: Request, lab: str, machine: str) -> Response:
        the_machine = self.get_machine()
        start, end = _range(request, the_machine.lab)
        return Response(MachineAvailabilityOutput(_availability(the_machine, start, end)).data)


def _availability(machine: Machine, start: datetime, end: datetime, free=None) -> dict:
    return {
        "machine": machine.pk,
        "machine_slug": machine.slug,
        "status": machine.status,
        "timezone": machine.lab.timezone,
        "start": start,
        "end": end,
        "free": _slots(free if free is not None else selectors.machine_free_slots(machine, start, end)),
    }


class KindAvailabilityApi(LabContextMixin, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("kind", str, required=True, enum=Machine.Kind.values), *RANGE_PARAMS],
        responses=MachineAvailabilityOutput(many=True),
    )
    def get(self, request: Request, lab: str) -> Response:
        the_lab = self.get_lab()
        kind = _kind(request)
        start, end = _range(request, the_lab)
        rows = [
            _availability(m, start, end, free)
            for m, free in selectors.kind_free_slots(the_lab, kind, start, end)
        ]
        return Response(MachineAvailabilityOutput(rows, many=True).data)


def _kind(request: Request) -> str:
    kind = request.query_params.get("kind", "")
    if kind not in Machine.Kind.values:
        raise ValidationError(f"'kind' must be one of {', '.join(Machine.Kind.values)}.")
    return kind


class FirstFreeSlotApi(LabContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, required=True, enum=Machine.Kind.values),
            OpenApiParameter(
                "minutes", {"type": "integer", "minimum": 1}, required=True, description="Length of the slot."
            ),
            OpenApiParameter("after", INSTANT_SCHEMA, description="Date or time with offset; now if absent."),
        ],
        responses={200: FirstFreeSlotOutput, **errors(404)},
        description="The earliest free slot of that length on any machine of the kind (for the requester: "
        "only machines they are qualified for).",
    )
    def get(self, request: Request, lab: str) -> Response:
        the_lab = self.get_lab()
        kind = _kind(request)
        # Required: absent reads as 0, which is refused like any other non-positive number.
        minutes = param_positive_int(request.query_params, name="minutes", default=0)
        if minutes < 1:
            raise ValidationError("'minutes' must be a positive whole number.")
        after = _instant(request.query_params.get("after"), the_lab, "after", default=timezone.now())
        member = request.user if request.user.is_authenticated else None
        found = selectors.first_free_slot(the_lab, kind, minutes, after=after, member=member)
        if found is None:
            raise NotFound(
                f"No {Machine.Kind(kind).label.lower()} of {the_lab.name} is free that long within its horizon."
            )
        machine, start, end = found
        return Response(
            FirstFreeSlotOutput(
                {
                    "machine": machine.pk,
                    "machine_slug": machine.slug,
                    "machine_name": machine.name,
                    "start": start,
                    "end": end,
                    "local_start": start.astimezone(the_lab.zone).isoformat(),
                }
            ).data
        )


# -- bookings ------------------------------------------------------------------------------


class BookingListApi(generics.ListAPIView):
    # Only for the schema generator, which reads the model from it; get_queryset decides.
    queryset = Booking.objects.none()
    """Your bookings, newest first."""

    serializer_class = BookingOutput
    permission_classes = AUTHENTICATED

    def get_queryset(self):
        user = signed_in_user(self.request)
        if getattr(self, "swagger_fake_view", False):
            return Booking.objects.none()
        rows = selectors.bookings_of_member(user)
        status = param_choice(self.request.query_params, name="status", choices=Booking.Status.values)
        return rows.filter(status=status) if status else rows

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=Booking.Status.values)])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=BookingCreateInput, responses={201: BookingOutput, **errors(404, 409)})
    def post(self, request: Request) -> Response:
        user = signed_in_user(request)
        data = BookingCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        machine = selectors.machine_get_by_id(values["machine"])
        claimed_lab = None
        if values.get("lab"):
            key = values["lab"]
            claimed_lab = (
                Lab.objects.filter(pk=int(key)) if key.isdigit() else Lab.objects.filter(slug=key)
            ).first()
            if claimed_lab is None:
                raise ValidationError(f"There is no lab {key!r}.")
        booking = services.booking_create(
            machine=machine,
            member=user,
            start=values["start"],
            end=values["end"],
            note=values["note"],
            lab=claimed_lab,
        )
        return Response(BookingOutput(booking).data, status=201)


class LabBookingListApi(LabContextMixin, generics.ListAPIView):
    # Only for the schema generator, which reads the model from it; get_queryset decides.
    queryset = Booking.objects.none()
    """All bookings of the lab's machines, for its managers."""

    serializer_class = BookingOutput
    permission_classes = AUTHENTICATED

    def get_queryset(self):
        user = signed_in_user(self.request)
        if getattr(self, "swagger_fake_view", False):
            return Booking.objects.none()
        lab = self.get_lab()
        selectors.require_manager(lab, user)
        rows = selectors.bookings_of_lab(lab).order_by("start")
        query = self.request.query_params
        status = param_choice(query, name="status", choices=Booking.Status.values)
        if status:
            rows = rows.filter(status=status)
        if query.get("machine"):
            rows = rows.filter(machine__slug=query["machine"])
        if param_flag(query, name="needs_decision"):
            rows = rows.filter(needs_decision=True)
        if param_flag(query, name="upcoming"):
            rows = rows.filter(end__gt=timezone.now())
        return rows

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Booking.Status.values),
            OpenApiParameter("machine", str, description="Machine slug."),
            OpenApiParameter(
                "needs_decision", bool, description="Only bookings a status change or closure flagged."
            ),
            OpenApiParameter("upcoming", bool, description="Only bookings not over yet."),
        ],
        responses={200: BookingOutput(many=True), **errors(403)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class BookingDetailApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=BookingOutput)
    def get(self, request: Request, booking_id: int) -> Response:
        user = signed_in_user(request)
        return Response(BookingOutput(selectors.booking_get(booking_id=booking_id, user=user)).data)


class BookingActionApi(APIView):
    """POST bookings/{id}/{action}/: cancel, approve, refuse or keep."""

    permission_classes = AUTHENTICATED
    action: str = ""

    @extend_schema(request=ReasonInput, responses={200: BookingOutput, **errors(409)})
    def post(self, request: Request, booking_id: int) -> Response:
        user = signed_in_user(request)
        booking = selectors.booking_get(booking_id=booking_id, user=user)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"]
        if self.action == "cancel":
            booking = services.booking_cancel(booking=booking, actor=user, reason=reason)
        elif self.action == "approve":
            booking = services.booking_approve(booking=booking, actor=user)
        elif self.action == "refuse":
            booking = services.booking_refuse(booking=booking, actor=user, reason=reason)
        else:
            booking = services.booking_keep(booking=booking, actor=user)
        return Response(BookingOutput(booking).data)


# -- qualifications ------------------------------------------------------------------------


class QualificationListApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses={200: QualificationOutput(many=True), **errors(403)})
    def get(self, request: Request, lab: str) -> Response:
        """Managers see all the lab's qualifications; members their own."""
        user = signed_in_user(request)
        the_lab = self.get_lab()
        rows = selectors.qualifications_of_lab(the_lab)
        if selectors.lab_role(the_lab, user) != "manager":
            rows = rows.filter(member=user)
        return Response(QualificationOutput(rows, many=True).data)

    @extend_schema(request=QualificationInput, responses={201: QualificationOutput})
    def post(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        the_lab = self.get_lab()
        selectors.require_manager(the_lab, user)
        data = QualificationInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        machine = (
            selectors.machine_get(lab=the_lab, slug=values["machine"]) if values.get("machine") else None
        )
        qualification = services.qualification_record(
            lab=the_lab,
            actor=user,
            member=_user(values["member"]),
            machine=machine,
            kind=values.get("kind", ""),
            trained_on=values["trained_on"],
            trainer=_user(values["trainer"]) if values.get("trainer") else None,
            expires_on=values.get("expires_on"),
        )
        return Response(QualificationOutput(qualification).data, status=201)


class QualificationDetailApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses={204: None})
    def delete(self, request: Request, lab: str, qualification_id: int) -> Response:
        user = signed_in_user(request)
        qualification = get_object_or_404(Qualification, pk=qualification_id, lab=self.get_lab())
        services.qualification_revoke(qualification=qualification, actor=user)
        return Response(status=204)


# -- calendar feeds ----------------------------------------------------------


class FeedApi(LabContextMixin, APIView):
    """GET: the requester's calendar feed address (made on first use). POST: a new address."""

    permission_classes = AUTHENTICATED
    scope: str = "member"

    def _feed(self, request: Request):
        user = signed_in_user(request)
        if self.scope == "machine":
            return services.calendar_feed_get(owner=user, machine=self.get_machine())
        if self.scope == "lab":
            return services.calendar_feed_get(owner=user, lab=self.get_lab())
        return services.calendar_feed_get(owner=user)

    @extend_schema(responses=FeedOutput)
    def get(self, request: Request, **kwargs) -> Response:
        return Response(FeedOutput(self._feed(request), context={"request": request}).data)

    @extend_schema(request=None, responses=FeedOutput)
    def post(self, request: Request, **kwargs) -> Response:
        user = signed_in_user(request)
        feed = services.calendar_feed_reset(feed=self._feed(request), actor=user)
        return Response(FeedOutput(feed, context={"request": request}).data)
