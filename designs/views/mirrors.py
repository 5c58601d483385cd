"""Pages of pull mirrors (a design copying a remote) and push mirrors (remotes a design is copied to)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from designs import forms, selectors
from designs.models import Licence
from designs.services import mirrors
from designs.views.pages import (
    detail_url,
    load_design,
    render_design_page,
)
from hub.auth import signed_in_user
from hub.exceptions import NotFound
from hub.views import form_call, hub_page

# -- mirrors ------------------------------------------------------------------------------


@login_required
@hub_page
def mirror_new(request: HttpRequest) -> HttpResponse:
    form = forms.MirrorCreateForm(request.POST or None, initial={"licence": Licence.CERN_OHL_S})
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if v is not None}
        ok, design = form_call(form, mirrors.mirror_create, owner=request.user, **data)
        if ok:
            messages.success(request, f"Created {design.full_name}; its first refresh is on its way.")
            return redirect(detail_url(design))
    return render(request, "designs/mirror_new.html", {"form": form})


@login_required
@hub_page
def design_mirror_refresh(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, _ = load_design(request, owner, slug)
    if request.method == "POST":
        mirror = mirrors.mirror_refresh_now(design=design, user=signed_in_user(request))
        if mirror.last_error:
            messages.error(request, f"The refresh failed: {mirror.last_error}")
        else:
            messages.success(request, "Refreshed from the remote.")
    return redirect(detail_url(design))


@login_required
@hub_page
def design_mirrors(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="owner")
    mirror = selectors.design_mirror(design)
    action = request.POST.get("action")
    pull_form = None
    if mirror is not None:
        pull_form = forms.PullMirrorForm(
            request.POST if action == "update-pull" else None,
            initial={"url": mirror.url, "interval": mirror.interval, "username": mirror.username},
        )
    push_form = forms.PushMirrorForm(request.POST if action == "add-push" else None)
    here = request.path
    if action == "update-pull" and pull_form is not None and pull_form.is_valid():
        data = pull_form.cleaned_data
        ok, _ = form_call(
            pull_form,
            mirrors.mirror_update,
            design=design,
            user=request.user,
            url=data["url"],
            interval=data["interval"],
            username=data["username"],
            token=data["token"] or None,
            clear_credential=data["clear_credential"],
        )
        if ok:
            messages.success(request, "Mirror settings saved.")
            return redirect(here)
    elif action == "stop-pull":
        mirrors.mirror_stop(design=design, user=signed_in_user(request))
        messages.success(request, f"{design.full_name} is no longer a mirror: it accepts commits now.")
        return redirect(here)
    elif action == "add-push" and push_form.is_valid():
        ok, _ = form_call(
            push_form, mirrors.push_mirror_add, design=design, user=request.user, **push_form.cleaned_data
        )
        if ok:
            messages.success(request, "Push mirror added; the first push is on its way.")
            return redirect(here)
    elif action in ("push-now", "remove-push", "enable-push", "disable-push"):
        mirror_id = _mirror_id(request.POST.get("mirror_id"))
        if action == "push-now":
            pushed = mirrors.push_mirror_push_now(
                design=design, user=signed_in_user(request), mirror_id=mirror_id
            )
            if pushed.last_error:
                messages.error(request, f"The push failed: {pushed.last_error}")
            else:
                messages.success(request, "Pushed.")
        elif action == "remove-push":
            mirrors.push_mirror_remove(design=design, user=signed_in_user(request), mirror_id=mirror_id)
            messages.success(request, "Push mirror removed.")
        else:
            enabled = action == "enable-push"
            mirrors.push_mirror_update(
                design=design, user=signed_in_user(request), mirror_id=mirror_id, enabled=enabled
            )
            messages.success(request, "Push mirror turned " + ("on." if enabled else "off."))
        return redirect(here)
    return render_design_page(
        request,
        "designs/mirrors.html",
        design,
        role,
        "settings",
        pull_form=pull_form,
        push_form=push_form,
        push_mirrors=selectors.push_mirrors_of(design),
    )


def _mirror_id(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("No such push mirror.") from None
