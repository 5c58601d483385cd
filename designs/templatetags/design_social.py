"""`{% design_social design as social %}`: the design page's stars, watchers, forks and
makes, and the requester's own watch level and star (designs/selectors.py)."""

from __future__ import annotations

from typing import Any

from django import template

from designs import selectors
from designs.models import Design

register = template.Library()


@register.simple_tag(takes_context=True)
def design_social(context: dict[str, Any], design: Design) -> dict[str, Any]:
    user = context["request"].user
    watch = selectors.watch_of(design, user)
    return {
        "counts": selectors.social_counts([design], viewer=user)[design.pk],
        "level": watch.level if watch else ("all" if user.pk == design.owner_id else ""),
        "starred": selectors.has_starred(design, user),
    }
