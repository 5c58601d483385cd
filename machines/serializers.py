"""Input and output shapes of the labs API. Inputs validate; outputs describe.

No output ever names `connection_secret`: connection settings are write-only
(`connection_url`, `connection_api_key` in inputs; `has_connection` in outputs).
"""

from __future__ import annotations

import re
from dataclasses import asdict

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hub.inputs import Input
from hub.markdown import MAX_MARKDOWN_CHARS, shown_html
from machines.models import (
    Booking,
    CalendarFeed,
    Closure,
    Lab,
    LabMembership,
    Machine,
    Qualification,
)
from machines.selectors import rules_for


class AwareDateTimeField(serializers.DateTimeField):
    """A datetime that must carry its offset: a naive one is refused, never guessed."""

    default_error_messages = {
        "naive": "Give the time zone: an offset such as 2026-03-28T10:00:00+01:00, or Z for UTC.",
    }

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


RULE_HELP = {
    "min_booking_minutes": "Shortest booking, in minutes.",
    "max_booking_minutes": "Longest booking, in minutes.",
    "min_notice_minutes": "How long ahead a booking must be made, in minutes.",
    "max_horizon_days": "How far ahead a booking may start, in days.",
    "weekly_quota_minutes": "Minutes a member may book per week (null: no limit).",
    "requires_approval": "Bookings wait for a manager's approval.",
    "cancel_deadline_minutes": "Members may cancel until this many minutes before the start.",
}


MAX_HORIZON_DAYS = 10 * 366
MAX_RULE_MINUTES = MAX_HORIZON_DAYS * 24 * 60


def _rule_fields(*, allow_null: bool) -> dict[str, serializers.Field]:
    fields: dict[str, serializers.Field] = {}
    for name, help_text in RULE_HELP.items():
        if name == "requires_approval":
            fields[name] = serializers.BooleanField(
                required=False, allow_null=allow_null, help_text=help_text
            )
        else:
            fields[name] = serializers.IntegerField(
                required=False,
                allow_null=allow_null or name == "weekly_quota_minutes",
                min_value=0 if name in ("min_notice_minutes", "cancel_deadline_minutes") else 1,
                # Bounds that keep `now + rule` a date (a horizon of 10**9 days was a 500).
                max_value=MAX_HORIZON_DAYS if name == "max_horizon_days" else MAX_RULE_MINUTES,
                help_text=help_text,
            )
    return fields


# Built from one list, so the lab's and the machine's rules cannot drift apart; a machine's
# null means "the lab's rule". The rule fields come first, where a base class's declared
# fields would stand.
class LabRulesInput(Input):
    def get_fields(self) -> dict[str, serializers.Field]:
        return {**_rule_fields(allow_null=False), **super().get_fields()}


class MachineRulesInput(Input):
    def get_fields(self) -> dict[str, serializers.Field]:
        return {**_rule_fields(allow_null=True), **super().get_fields()}


# -- labs ----------------------------------------------------------------------------------


class LabOutput(serializers.ModelSerializer):
    description_html = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField()

    class Meta:
        model = Lab
        fields = [
            "id",
            "slug",
            "name",
            "address",
            "latitude",
            "longitude",
            "timezone",
            "locale",
            "description",
            "description_html",
            "join_policy",
            *Lab.RULE_FIELDS,
            "created_at",
            "url",
            "web_url",
        ]

    def get_description_html(self, lab: Lab) -> str:
        return shown_html(lab, "description")

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_url(self, lab: Lab) -> str:
        return self._absolute(reverse("api-lab-detail", args=[lab.slug]))

    def get_web_url(self, lab: Lab) -> str:
        return self._absolute(reverse("lab-detail", args=[lab.slug]))


class LabCreateInput(LabRulesInput):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(max_length=60)
    address = serializers.CharField(required=False, allow_blank=True, default="")
    timezone = serializers.CharField(max_length=64, default="UTC", help_text="IANA zone, e.g. Europe/Paris.")
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=MAX_MARKDOWN_CHARS, help_text="Markdown."
    )
    join_policy = serializers.ChoiceField(choices=Lab.JoinPolicy.choices, default=Lab.JoinPolicy.OPEN)
    latitude = serializers.FloatField(
        required=False, allow_null=True, min_value=-90, max_value=90, help_text="For 'nearest' (WGS 84)."
    )
    longitude = serializers.FloatField(required=False, allow_null=True, min_value=-180, max_value=180)


class LabUpdateInput(LabRulesInput):
    refuse_empty = True
    name = serializers.CharField(max_length=200, required=False)
    address = serializers.CharField(required=False, allow_blank=True)
    latitude = serializers.FloatField(
        required=False, allow_null=True, min_value=-90, max_value=90, help_text="For 'nearest' (WGS 84)."
    )
    longitude = serializers.FloatField(required=False, allow_null=True, min_value=-180, max_value=180)
    timezone = serializers.CharField(max_length=64, required=False)
    locale = serializers.CharField(
        max_length=15,
        required=False,
        allow_blank=True,
        help_text="The language its pages write dates and times in (e.g. 'fr'); empty: the hub's.",
    )
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_MARKDOWN_CHARS, help_text="Markdown."
    )
    join_policy = serializers.ChoiceField(choices=Lab.JoinPolicy.choices, required=False)


WALL_CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"


@extend_schema_field({"type": "string", "pattern": WALL_CLOCK_PATTERN, "example": "09:00"})
class WallClockField(serializers.TimeField):
    """A time of day in the lab's own zone: `09:00`, `09:00:00`, never an offset.

    JSON Schema's `format: time` is RFC 3339's full-time, which requires an offset that a
    wall-clock time has not; the pattern says what is read and written.
    """

    def to_internal_value(self, value):
        if not isinstance(value, str) or not re.match(WALL_CLOCK_PATTERN, value):
            self.fail("invalid", format="hh:mm[:ss[.uuuuuu]]")
        return super().to_internal_value(value)


class OpeningHoursItem(Input):  # read in OpeningHoursInput, written by LabHoursApi
    weekday = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday … 6 = Sunday")
    opens = WallClockField(help_text="Wall-clock time in the lab's zone, e.g. 09:00.")
    closes = WallClockField(help_text="e.g. 18:00; 00:00 means midnight at the end of the day.")


class OpeningHoursInput(Input):
    hours = OpeningHoursItem(many=True)


class ClosureOutput(serializers.ModelSerializer):
    class Meta:
        model = Closure
        fields = ["id", "start", "end", "reason"]


class ClosureInput(Input):
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class MembershipOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    lab = serializers.CharField(source="lab.slug")

    class Meta:
        model = LabMembership
        fields = ["lab", "username", "role", "status", "created_at"]


class MembershipUpdateInput(Input):
    approve = serializers.BooleanField(
        required=False, help_text="Approve (true) or decline (false) a request."
    )
    role = serializers.ChoiceField(choices=LabMembership.Role.choices, required=False)

    def validate(self, data):
        if ("approve" in data) == ("role" in data):
            raise serializers.ValidationError("Give either 'approve' or 'role'.")
        return data


# -- machines ------------------------------------------------------------------------------


class MachineOutput(serializers.ModelSerializer):
    lab = serializers.CharField(source="lab.slug")
    has_connection = serializers.BooleanField(help_text="Connection settings are stored (never shown).")
    photo_url = serializers.SerializerMethodField()
    rules = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField()

    class Meta:
        model = Machine
        fields = [
            "id",
            "lab",
            "slug",
            "name",
            "kind",
            "model_name",
            "work_x_mm",
            "work_y_mm",
            "work_z_mm",
            "capabilities",
            "status",
            "status_reason",
            "status_changed_at",
            "notes",
            "requires_qualification",
            *Lab.RULE_FIELDS,
            "rules",
            "has_connection",
            "photo_url",
            "url",
            "web_url",
        ]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_photo_url(self, machine: Machine) -> str | None:
        if not machine.photo:
            return None
        return self._absolute(reverse("machine-photo", args=[machine.lab.slug, machine.slug]))

    def get_rules(self, machine: Machine) -> dict:
        """The rules in force (the machine's own, else the lab's)."""
        return asdict(rules_for(machine))

    def get_url(self, machine: Machine) -> str:
        return self._absolute(reverse("api-machine-detail", args=[machine.lab.slug, machine.slug]))

    def get_web_url(self, machine: Machine) -> str:
        return self._absolute(reverse("machine-detail", args=[machine.lab.slug, machine.slug]))


class MachineFieldsInput(MachineRulesInput):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Machine.Kind.choices)
    model_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    work_x_mm = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    work_y_mm = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    work_z_mm = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    capabilities = serializers.DictField(
        required=False, help_text='e.g. {"materials": ["PLA"], "max_temperature_c": 260}'
    )
    notes = serializers.CharField(required=False, allow_blank=True)
    requires_qualification = serializers.BooleanField(required=False)
    connection_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="OctoPrint address. Write-only: stored encrypted, never returned. Empty clears it.",
    )
    connection_api_key = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="OctoPrint API key. Write-only: stored encrypted, never returned.",
    )


class MachineCreateInput(MachineFieldsInput):
    slug = serializers.CharField(max_length=60)


class MachineUpdateInput(MachineFieldsInput):
    refuse_empty = True
    pass


class MachineStatusInput(Input):
    status = serializers.ChoiceField(choices=Machine.Status.choices)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class MaintenanceInput(Input):
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    reason = serializers.CharField(max_length=500)
    cancel_overlapping = serializers.BooleanField(default=False)


# -- bookings --------------------------------------------------------------------------------


class BookingOutput(serializers.ModelSerializer):
    machine = serializers.IntegerField(source="machine_id")
    machine_slug = serializers.CharField(source="machine.slug")
    machine_name = serializers.CharField(source="machine.name")
    lab = serializers.CharField(source="machine.lab.slug")
    member = serializers.SerializerMethodField()
    local_start = serializers.SerializerMethodField()
    local_end = serializers.SerializerMethodField()

    class Meta:
        model = Booking
        fields = [
            "id",
            "kind",
            "status",
            "machine",
            "machine_slug",
            "machine_name",
            "lab",
            "member",
            "start",
            "end",
            "local_start",
            "local_end",
            "note",
            "reason",
            "needs_decision",
            "created_at",
            "decided_at",
        ]

    def get_member(self, booking: Booking) -> str | None:
        return booking.member.username if booking.member is not None else None

    def get_local_start(self, booking: Booking) -> str:
        """The start in the lab's time zone, with its offset."""
        return booking.start.astimezone(booking.machine.lab.zone).isoformat()

    def get_local_end(self, booking: Booking) -> str:
        return booking.end.astimezone(booking.machine.lab.zone).isoformat()


class BookingCreateInput(Input):
    machine = serializers.IntegerField(help_text="The machine's id.")
    lab = serializers.CharField(
        required=False, help_text="The machine's lab (slug or id); checked, never trusted."
    )
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReasonInput(Input):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class SlotOutput(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    minutes = serializers.IntegerField()


class MachineAvailabilityOutput(serializers.Serializer):
    machine = serializers.IntegerField()
    machine_slug = serializers.CharField()
    status = serializers.CharField()
    timezone = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    free = SlotOutput(many=True)


class FirstFreeSlotOutput(serializers.Serializer):
    machine = serializers.IntegerField()
    machine_slug = serializers.CharField()
    machine_name = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    local_start = serializers.CharField()


# -- qualifications, notifications, feeds ----------------------------------------------------


class QualificationOutput(serializers.ModelSerializer):
    member = serializers.CharField(source="member.username")
    machine = serializers.SerializerMethodField()
    trainer = serializers.SerializerMethodField()

    class Meta:
        model = Qualification
        fields = ["id", "member", "machine", "kind", "trained_on", "trainer", "expires_on", "created_at"]

    def get_machine(self, q: Qualification) -> str | None:
        return q.machine.slug if q.machine is not None else None

    def get_trainer(self, q: Qualification) -> str | None:
        return q.trainer.username if q.trainer is not None else None


class QualificationInput(Input):
    member = serializers.CharField(help_text="Username.")
    machine = serializers.CharField(required=False, help_text="Machine slug (or give kind).")
    kind = serializers.ChoiceField(choices=Machine.Kind.choices, required=False)
    trained_on = serializers.DateField()
    trainer = serializers.CharField(required=False, help_text="Username; the manager recording it if absent.")
    expires_on = serializers.DateField(required=False, allow_null=True)


class FeedOutput(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    lab = serializers.SerializerMethodField()
    machine = serializers.SerializerMethodField()

    class Meta:
        model = CalendarFeed
        fields = ["scope", "lab", "machine", "url", "created_at"]

    def get_url(self, feed: CalendarFeed) -> str:
        path = reverse("calendar-feed", args=[feed.token])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_lab(self, feed: CalendarFeed) -> str | None:
        return feed.lab.slug if feed.lab is not None else None

    def get_machine(self, feed: CalendarFeed) -> str | None:
        return feed.machine.slug if feed.machine is not None else None
