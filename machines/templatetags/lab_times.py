"""Template filters for the lab pages' times, written by machines.labels in one way."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.timezone import localtime

from machines import labels

register = template.Library()


@register.filter
def span(start: datetime, end: datetime) -> str:
    """`{{ start|span:end }}` in the zone of the enclosing {% timezone %} tag: 09:00–12:00,
    14:00–24:00 for a stretch to midnight, "all day" for a whole day."""
    return labels.span_text(localtime(start), localtime(end))
