"""The base of every API input serializer: as strict about a form as about JSON.

DRF reads a form (multipart or urlencoded) leniently: an empty value of an optional field
that may not be blank counts as *not sent* (the default silently applies), and a boolean
takes `1`, `0`, `on`, `yes`… The schema promises the same rules for every encoding, so a
form value is checked against the rules a JSON value meets before DRF reads it: empty is
"may not be blank" unless the field allows blank, and a boolean is `true` or `false`.
A form spells null `null` (where the field may be null), as DRF's booleans already read
it; empty is an empty string, never null.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.files.uploadedfile import UploadedFile
from django.http import QueryDict
from rest_framework import serializers
from rest_framework.utils import html


def form_value_error(field: serializers.Field, value: Any) -> str | None:
    """Why `value`, sent in a form for `field`, breaks a rule the schema states; or None."""
    if isinstance(value, UploadedFile):
        return None
    if value == "null" and field.allow_null:
        return None
    if isinstance(field, serializers.BooleanField):
        allowed = ("true", "false", "null") if field.allow_null else ("true", "false")
        return None if value in allowed else f"Must be {' or '.join(allowed)}."
    if value == "" and not getattr(field, "allow_blank", False):
        return "This field may not be blank."
    return None


def json_value_error(field: serializers.Field, value: Any) -> str | None:
    """Why `value`, sent in JSON for `field`, is not of the type the schema states; or None.

    DRF coerces: `0` is false, `12` becomes the string "12", "12" the number 12. The schema
    says boolean, string, integer, so JSON must send those.
    """
    if value is None:
        return None  # DRF's own check answers "may not be null"
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be a boolean: true or false."
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else "Must be an integer."
    if isinstance(field, serializers.FloatField):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "Must be a number."
    if isinstance(field, serializers.CharField | serializers.DecimalField | serializers.DateTimeField):
        # A DecimalField is a string in the schema (COERCE_DECIMAL_TO_STRING), as are times.
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.DateField | serializers.TimeField):
        return None if isinstance(value, str) else "Must be a string."
    return None


class Input(serializers.Serializer):
    # An update that sends nothing is refused (and the schema says `minProperties: 1`): it
    # is a mistake, or a body that is no object at all, which in a form looks empty too.
    refuse_empty: ClassVar[bool] = False

    def to_internal_value(self, data: Any) -> Any:
        if self.refuse_empty and isinstance(data, dict) and not data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Nothing to change: give at least one field."]}
            )
        form = html.is_html_input(data)
        if form or isinstance(data, dict):
            errors = self._encoding_errors(data, form=form)
            if errors:
                raise serializers.ValidationError(errors)
        if form:
            data = _nulls_spelled_out(data, self._writable_fields)
        return super().to_internal_value(data)

    def _encoding_errors(self, data: Any, *, form: bool) -> dict[str, list[str]]:
        """One message per field whose value the encoding's rules above refuse."""
        check = form_value_error if form else json_value_error
        errors: dict[str, list[str]] = {}
        for field in self._writable_fields:
            name = str(field.field_name)
            if name not in data:
                continue
            many = isinstance(field, serializers.ListField)
            rule = field.child if isinstance(field, serializers.ListField) else field
            if form:
                # All of a list's values; of anything else the last, which is what DRF reads.
                values = data.getlist(name) if many else data.getlist(name)[-1:]
            else:
                values = data[name] if many else [data[name]]
                if not isinstance(values, list):
                    continue  # DRF's own check answers "Expected a list of items"
            message = next((m for value in values if (m := check(rule, value)) is not None), None)
            if message is not None:
                errors[name] = [message]
        return errors


def _nulls_spelled_out(data: Any, fields: Any) -> Any:
    """The form with each `null` of a nullable field as the empty value DRF reads as null."""
    nulls = [f.field_name for f in fields if f.allow_null and data.getlist(f.field_name)[-1:] == ["null"]]
    if not nulls:
        return data
    # A shallow copy: QueryDict.copy() would deep-copy the uploaded files too.
    spelled = QueryDict(mutable=True)
    for key in data:
        spelled.setlist(key, [""] if key in nulls else data.getlist(key))
    return spelled
