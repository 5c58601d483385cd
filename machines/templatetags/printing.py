"""Template helpers of the print queue: durations."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """3725 → '1 h 02 min'; 45 → '1 min'; None → ''."""
    if seconds in (None, ""):
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes = max(1, round(rest / 60)) if not hours else rest // 60
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
