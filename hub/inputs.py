"""The base of every API input serializer: as strict about a form as about JSON.

DRF reads a form (multipart or urlencoded) leniently: an empty value of an optional field
that may not be blank counts as *not sent* (the default silently applies), an empty
nullable one as null, and a boolean takes `1`, `0`, `on`, `yes`… The schema promises
the same rules for every encoding, so a form value is checked against the rules a JSON
value meets before DRF reads it: empty is "may not be blank" unless the field allows
blank, and a boolean is `true` or `false` (or `null` where null is allowed).
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from rest_framework import serializers
from rest_framework.utils import html


def form_value_error(field: serializers.Field, value: Any) -> str | None:
    """Why `value`, sent in a form for `field`, breaks a rule the schema states; or None."""
    if isinstance(value, UploadedFile):
        return None
    if isinstance(field, serializers.BooleanField):
        allowed = ("true", "false", "null") if field.allow_null else ("true", "false")
        return None if value in allowed else f"Must be {' or '.join(allowed)}."
    if value == "" and not getattr(field, "allow_blank", False):
        return "This field may not be blank."
    return None


class Input(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if html.is_html_input(data):
            errors: dict[str, list[str]] = {}
            for field in self._writable_fields:
                values = data.getlist(field.field_name)
                if isinstance(field, serializers.ListField):
                    rule = field.child
                else:
                    rule, values = field, values[-1:]  # what DRF reads of a repeated key
                for value in values:
                    message = form_value_error(rule, value)
                    if message is not None:
                        errors[str(field.field_name)] = [message]
                        break
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
