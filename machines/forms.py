"""Forms of the lab pages. They only shape input (local wall-clock times become aware
datetimes in the lab's zone); the services decide what is allowed."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from django import forms
from django.conf import settings
from django.utils import formats
from django.utils.dateparse import parse_datetime

from machines import labels, timeline
from machines.models import Lab, Machine

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SPAN_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")


def local_instant(day, at: time, lab: Lab) -> datetime:
    """A wall-clock time typed on a page, in the lab's zone."""
    return timeline.wall_clock(day, at, lab.zone)


class LabForm(forms.ModelForm):
    class Meta:
        model = Lab
        fields = [
            "name",
            "slug",
            "address",
            "latitude",
            "longitude",
            "timezone",
            "locale",
            "description",
            "join_policy",
            "min_booking_minutes",
            "max_booking_minutes",
            "min_notice_minutes",
            "max_horizon_days",
            "weekly_quota_minutes",
            "requires_approval",
            "cancel_deadline_minutes",
        ]
        widgets = {
            "address": forms.Textarea(attrs={"rows": 2}),
            "description": forms.Textarea(attrs={"rows": 5}),
        }
        help_texts = {"timezone": "IANA name, e.g. Europe/Paris.", "slug": "Its address: /labs/<slug>/."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, value in Lab.DEFAULT_RULES.items():
            if name != "weekly_quota_minutes":
                self.fields[name].required = False
                self.fields[name].initial = value
        self.fields["requires_approval"] = forms.BooleanField(required=False, label="Bookings need approval")
        self.fields["locale"] = forms.ChoiceField(
            required=False,
            label="Language of dates and times",
            choices=[("", f"The hub's ({settings.LANGUAGE_CODE})"), *settings.LANGUAGES],
            help_text="How the calendar and booking forms write days, months and times.",
        )
        if self.instance.pk:
            self.fields.pop("slug")

    def _post_clean(self):  # the service validates the model, with its own messages
        pass


class HoursForm(forms.Form):
    """One line per weekday: '09:00-12:00, 14:00-18:00', or empty when closed."""

    def __init__(self, *args, lab: Lab, **kwargs):
        super().__init__(*args, **kwargs)
        current: dict[int, list[str]] = {}
        for h in lab.opening_hours.all():
            current.setdefault(h.weekday, []).append(
                f"{labels.clock(h.opens)}-{labels.clock(h.closes, closing=True)}"
            )
        for n, name in enumerate(WEEKDAYS):
            self.fields[f"day{n}"] = forms.CharField(
                label=name,
                required=False,
                initial=", ".join(current.get(n, [])),
                widget=forms.TextInput(attrs={"placeholder": "closed"}),
            )

    def clean(self):
        hours = []
        for n in range(7):
            text = self.cleaned_data.get(f"day{n}", "").strip()
            for part in filter(None, (p.strip() for p in text.split(","))):
                match = SPAN_RE.match(part)
                if not match:
                    raise forms.ValidationError(f"{WEEKDAYS[n]}: write spans like 09:00-18:00.")
                h1, m1, h2, m2 = map(int, match.groups())
                try:
                    hours.append((n, time(h1, m1), time(0) if h2 == 24 else time(h2, m2)))
                except ValueError:
                    raise forms.ValidationError(f"{WEEKDAYS[n]}: {part} is not a time of day.") from None
        self.cleaned_data["hours"] = hours
        return self.cleaned_data


# An unambiguous day (31 > 12) to show the lab's way of writing dates as an example.
EXAMPLE_DAY = date(2026, 12, 31)
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]


class LocalRangeForm(forms.Form):
    """A day and two wall-clock times in the lab's zone (the end may be on the next day).

    Days are written the lab's way (its `language`: 31/12/2026 in a French lab) and times
    on the 24-hour clock, in plain text inputs: a browser's own date picker follows the
    browser's locale, not the lab's, and showed US-style dates in a French lab."""

    day = forms.DateField()
    start_time = forms.TimeField(label="From")
    end_time = forms.TimeField(label="To")
    end_day = forms.DateField(
        required=False, label="Until (day)", help_text="Only if it ends on another day."
    )

    def __init__(self, *args, lab: Lab, **kwargs):
        super().__init__(*args, **kwargs)
        self.lab = lab
        language = lab.language
        date_formats = list(formats.get_format("DATE_INPUT_FORMATS", lang=language))
        for name in ("day", "end_day"):
            field = self.fields[name]
            assert isinstance(field, forms.DateField)
            field.input_formats = date_formats
            field.widget = forms.DateInput(
                format=date_formats[0],
                attrs={
                    "lang": language,
                    "placeholder": f"e.g. {EXAMPLE_DAY.strftime(date_formats[0])}",
                    "inputmode": "numeric",
                },
            )
        for name in ("start_time", "end_time"):
            field = self.fields[name]
            assert isinstance(field, forms.TimeField)
            field.input_formats = TIME_FORMATS
            field.widget = forms.TimeInput(
                format=TIME_FORMATS[0],
                attrs={"lang": language, "placeholder": "e.g. 14:30", "inputmode": "numeric"},
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        data["start"] = local_instant(data["day"], data["start_time"], self.lab)
        data["end"] = local_instant(data.get("end_day") or data["day"], data["end_time"], self.lab)
        return data


class BookingForm(LocalRangeForm):
    note = forms.CharField(max_length=500, required=False, label="What for")
    field_order = ["day", "start_time", "end_time", "end_day", "note"]

    @staticmethod
    def initial_for(lab: Lab, start: str | None, end: str | None) -> dict[str, Any]:
        """The form's fields for a range picked on the calendar (`start` and `end` as ISO
        instants in the query string), in the lab's wall clock; nothing if unreadable."""
        try:
            first, last = parse_datetime(start or ""), parse_datetime(end or "")
        except ValueError:
            return {}
        if first is None or last is None or first.tzinfo is None or last.tzinfo is None or last <= first:
            return {}
        first, last = first.astimezone(lab.zone), last.astimezone(lab.zone)
        initial: dict[str, Any] = {"day": first.date(), "start_time": first.time(), "end_time": last.time()}
        if last.date() != first.date():
            initial["end_day"] = last.date()
        return initial


class ClosureForm(LocalRangeForm):
    reason = forms.CharField(max_length=200, required=False)


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """The form's own copy of one of its choice fields, typed (`form.fields` holds plain
    `Field`s to the type checker), so its choices or queryset can be set per request."""
    field = form.fields[name]
    if not isinstance(field, forms.ChoiceField):
        raise TypeError(f"{type(form).__name__}.{name} is not a choice field")
    return field


def model_choice_field(form: forms.BaseForm, name: str) -> forms.ModelChoiceField:
    field = form.fields[name]
    if not isinstance(field, forms.ModelChoiceField):
        raise TypeError(f"{type(form).__name__}.{name} is not a model choice field")
    return field


class MaintenanceForm(LocalRangeForm):
    machine = forms.ModelChoiceField(queryset=Machine.objects.none())
    reason = forms.CharField(max_length=500)
    cancel_overlapping = forms.BooleanField(required=False, label="Cancel bookings in the way")
    field_order = ["machine", "day", "start_time", "end_time", "end_day", "reason", "cancel_overlapping"]

    def __init__(self, *args, lab: Lab, **kwargs):
        super().__init__(*args, lab=lab, **kwargs)
        model_choice_field(self, "machine").queryset = lab.machines.order_by("name")


class MachineStatusForm(forms.Form):
    machine = forms.ModelChoiceField(queryset=Machine.objects.none())
    status = forms.ChoiceField(choices=Machine.Status.choices)
    reason = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, lab: Lab, **kwargs):
        super().__init__(*args, **kwargs)
        model_choice_field(self, "machine").queryset = lab.machines.order_by("name")


class MachineForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.CharField(max_length=60, help_text="Its address: lowercase letters, digits and '-'.")
    kind = forms.ChoiceField(choices=Machine.Kind.choices)
    model_name = forms.CharField(max_length=200, required=False, label="Model")
    work_x_mm = forms.IntegerField(min_value=1, required=False, label="Work area X (mm)")
    work_y_mm = forms.IntegerField(min_value=1, required=False, label="Work area Y (mm)")
    work_z_mm = forms.IntegerField(min_value=1, required=False, label="Work area Z (mm)")
    capabilities = forms.JSONField(
        required=False, initial=dict, help_text='JSON, e.g. {"materials": ["PLA", "PETG"]}'
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    requires_qualification = forms.BooleanField(required=False)
    photo = forms.FileField(required=False, help_text="PNG, JPEG, GIF or WebP, at most 5 MB.")
    min_booking_minutes = forms.IntegerField(min_value=1, required=False, help_text="Empty: the lab's rule.")
    max_booking_minutes = forms.IntegerField(min_value=1, required=False, help_text="Empty: the lab's rule.")
    min_notice_minutes = forms.IntegerField(min_value=0, required=False, help_text="Empty: the lab's rule.")
    max_horizon_days = forms.IntegerField(min_value=1, required=False, help_text="Empty: the lab's rule.")
    weekly_quota_minutes = forms.IntegerField(
        min_value=1, required=False, help_text="Counts this machine only; empty: the lab's quota."
    )
    cancel_deadline_minutes = forms.IntegerField(
        min_value=0, required=False, help_text="Empty: the lab's rule."
    )
    requires_approval = forms.NullBooleanField(
        required=False,
        widget=forms.Select(choices=[("unknown", "As the lab"), ("true", "Yes"), ("false", "No")]),
    )
    connection_url = forms.CharField(
        max_length=500,
        required=False,
        label="OctoPrint URL",
        help_text="Write-only: stored encrypted and never shown again. Leave empty to keep what is stored.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    connection_api_key = forms.CharField(
        max_length=200,
        required=False,
        label="OctoPrint API key",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    clear_connection = forms.BooleanField(required=False, label="Remove the stored connection settings")

    def __init__(self, *args, editing: bool = False, via_agent: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            self.fields.pop("slug")
        else:
            self.fields.pop("clear_connection")
        if via_agent:
            # Its lab agent holds the address and key; the hub keeps none to ask for.
            for name in ("connection_url", "connection_api_key", "clear_connection"):
                self.fields.pop(name, None)

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["capabilities"] = data.get("capabilities") or {}
        photo = data.pop("photo", None)
        clear = data.pop("clear_connection", False)
        url, key = data.pop("connection_url", ""), data.pop("connection_api_key", "")
        if clear:
            data["connection_url"] = ""
        elif url or key:
            data["connection_url"], data["connection_api_key"] = url, key
        if photo:
            data["photo"] = photo
        return data


class AgentForm(forms.Form):
    """A new lab agent: only its name; the hub makes its token."""

    name = forms.CharField(max_length=100, label="Agent name", help_text="e.g. 'Pi by the printers'.")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "agent")
        super().__init__(*args, **kwargs)


class QualificationForm(forms.Form):
    member = forms.ChoiceField()
    machine = forms.ModelChoiceField(queryset=Machine.objects.none(), required=False, help_text="A machine…")
    kind = forms.ChoiceField(
        choices=[("", "—"), *Machine.Kind.choices], required=False, help_text="…or every machine of a kind."
    )
    trained_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    expires_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, lab: Lab, **kwargs):
        super().__init__(*args, **kwargs)
        members = lab.memberships.filter(status="active").select_related("user").order_by("user__username")
        choice_field(self, "member").choices = [(m.user.username, m.user.username) for m in members]
        model_choice_field(self, "machine").queryset = lab.machines.order_by("name")
