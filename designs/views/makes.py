"""Pages of makes: "I made one" of a design at one version, its photo, deleting it.

The makes of a design show on its page (designs/templates/designs/_makes.html) and on the
maker's profile (designs/profile_panels.py); the form and the photo live here. A make's
photo is served through the design's visibility, never as a public file.
"""

from __future__ import annotations

from datetime import date
from typing import IO, Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from designs import selectors, services
from designs.models import Design, Make
from designs.services.makes import MAX_NOTES_CHARS, MAX_WHERE_CHARS
from designs.views.pages import detail_url, load_design, render_design_page
from hub.auth import signed_in_user
from hub.exceptions import NotFound
from hub.images import MAX_PHOTO_BYTES
from hub.models import User
from hub.redirects import safe_next
from hub.views import form_call, hub_page


class MakeForm(forms.Form):
    """Only this page takes it; the service checks every rule again."""

    version = forms.CharField(
        max_length=255, help_text="The branch, tag or commit you built from: its commit is recorded."
    )
    path = forms.CharField(
        max_length=4096, required=False, label="Part", help_text="The file you made, if one part."
    )
    photo = forms.FileField(
        required=False,
        help_text=(
            f"JPEG, PNG, WebP or GIF, up to {MAX_PHOTO_BYTES // (1024 * 1024)} MB. The hub keeps a "
            "re-encoded copy without its metadata: no location, no camera details."
        ),
    )
    outcome = forms.ChoiceField(choices=Make.Outcome.choices, initial=Make.Outcome.WORKS)
    made_on = forms.DateField(
        initial=timezone.localdate, label="Made on", widget=forms.DateInput(attrs={"type": "date"})
    )
    where = forms.CharField(
        max_length=MAX_WHERE_CHARS,
        required=False,
        help_text="A lab, a town, a workshop — as much as you like.",
    )
    notes = forms.CharField(
        max_length=MAX_NOTES_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="What you changed, what to watch out for.",
    )


def _make_from_form(
    *,
    design: Design,
    maker: User,
    version: str,
    path: str,
    photo: IO[bytes] | None,
    outcome: str,
    made_on: date,
    where: str,
    notes: str,
) -> Make:
    return services.make_create(
        design=design,
        maker=maker,
        commit_sha=selectors.design_resolve(design, version.strip()),
        path=path,
        photo=photo,
        notes=notes,
        where=where,
        outcome=outcome,
        made_on=made_on,
    )


@login_required
@hub_page
def design_make_new(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    initial: dict[str, Any] = {
        "version": request.GET.get("ref") or design.default_branch,
        "path": request.GET.get("path") or "",
    }
    form = MakeForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        ok, make = form_call(
            form, _make_from_form, design=design, maker=signed_in_user(request), **form.cleaned_data
        )
        if ok:
            messages.success(request, "Your make is recorded, and the hub signed a record of it.")
            return redirect(f"{detail_url(design)}#make-{make.pk}")
    return render_design_page(request, "designs/make_new.html", design, role, "files", form=form)


def design_make_photo(request: HttpRequest, owner: str, slug: str, make_id: int) -> HttpResponseBase:
    """The photo of a make, to whoever may see the design (else 404, as the design)."""
    try:
        design, _ = load_design(request, owner, slug)
        make = selectors.make_get(design, make_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if not make.photo:
        raise Http404("This make has no photo.")
    try:
        photo = make.photo.open("rb")
    except OSError:
        raise Http404("This make's photo is missing.") from None
    # Always a JPEG the hub made itself (hub.images), never the bytes that were sent.
    response = FileResponse(photo, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    response["Content-Disposition"] = "inline"
    return response


@login_required
@require_POST
@hub_page
def design_make_delete(request: HttpRequest, owner: str, slug: str, make_id: int) -> HttpResponse:
    design, _ = load_design(request, owner, slug)
    make = selectors.make_get(design, make_id)
    services.make_delete(make=make, actor=signed_in_user(request))
    messages.success(request, "Your make is deleted and its signed record revoked.")
    return redirect(safe_next(request, f"{detail_url(design)}#makes"))
