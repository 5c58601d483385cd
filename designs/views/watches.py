"""The design page's watch and star buttons (designs/services/watches.py): POST forms."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from designs.models import Watch
from designs.services import watches
from designs.views.pages import detail_url, load_design
from hub.auth import signed_in_user
from hub.views import hub_page

SAID = {
    Watch.Level.ALL: "You watch {name}: you hear of its proposals, comments and releases.",
    Watch.Level.RELEASES: "You watch the releases of {name}.",
    Watch.Level.IGNORE: "You ignore {name}: no news of it, only what is addressed to you.",
}


@login_required
@require_POST
@hub_page
def design_watch(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """`level` all, releases or ignore; empty: back to the default."""
    design, _ = load_design(request, owner, slug)
    user = signed_in_user(request)
    level = request.POST.get("level", "")
    if level:
        watches.watch_set(design=design, user=user, level=level)
        messages.success(request, SAID[Watch.Level(level)].format(name=design.full_name))
    else:
        watches.watch_remove(design=design, user=user)
        messages.success(request, f"You no longer choose how to watch {design.full_name}.")
    return redirect(detail_url(design))


@login_required
@require_POST
@hub_page
def design_star(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, _ = load_design(request, owner, slug)
    user = signed_in_user(request)
    if request.POST.get("star") == "false":
        watches.star_remove(design=design, user=user)
    else:
        watches.star_add(design=design, user=user)
    return redirect(detail_url(design))
