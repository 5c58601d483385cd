"""Template helpers of the print queue: durations, and what was made from a design."""

from __future__ import annotations

from django import template

from machines.printing.selectors import prints_of_design

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


@register.inclusion_tag("machines/_design_prints.html")
def design_prints(design, commits=None):
    """'Made N times in M labs' per commit of a design (all its commits with prints, or
    only those in `commits`: shas or objects with a `sha`)."""
    rows = prints_of_design(design)
    if commits is not None:
        wanted = {getattr(c, "sha", c) for c in commits}
        rows = [r for r in rows if r["commit_sha"] in wanted]
    return {"design": design, "rows": rows}
