"""Pages of releases (docs/releases.md): the list (where releases are made and deleted as
tags), one release with its notes, commit and files (attached and removed there), and a
file's download."""

from __future__ import annotations

from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse

from designs import forms, selectors, services
from designs.models import Design
from designs.paths import content_type_for
from designs.rawfiles import serve_release_asset
from designs.services import releases
from designs.views.pages import DESIGNS_PER_PAGE, load_design, render_design_page
from hub.auth import BadCredentials, Viewer, resolve, signed_in_user, viewer
from hub.exceptions import NotFound
from hub.views import form_call, hub_page


class ReleaseAssetForm(django_forms.Form):
    file = django_forms.FileField(label="File")
    name = django_forms.CharField(
        required=False, strip=False, max_length=1000, help_text="Empty: the file's own name."
    )


def _release_url(design: Design, tag: str) -> str:
    return reverse("design-release", args=[design.owner.username, design.slug, tag])


@hub_page
def design_releases(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """The releases, newest first, a page at a time, with their notes and files; writers
    make a release (an annotated tag) here, and delete one where the owner allows it."""
    design, role = load_design(request, owner, slug, need="write" if request.method == "POST" else None)
    action = request.POST.get("action")
    form = forms.TagCreateForm(request.POST if action == "create" else None)
    if action == "delete":
        name = request.POST.get("name", "")
        services.tag_delete(design=design, user=signed_in_user(request), name=name)
        messages.success(request, f"Deleted release {name}.")
        return redirect(request.path)
    if action == "create" and form.is_valid():
        ok, _ = form_call(form, services.tag_create, design=design, user=request.user, **form.cleaned_data)
        if ok:
            name = form.cleaned_data["name"]
            messages.success(request, f"Released {name}: attach its files here.")
            return redirect(_release_url(design, name))
    page = Paginator(selectors.release_tags(design), DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    return render_design_page(
        request,
        "designs/releases.html",
        design,
        role,
        "tags",
        form=form,
        page=page,
        releases=selectors.design_releases(design, list(page.object_list)),
    )


@hub_page
def design_release(request: HttpRequest, owner: str, slug: str, tag: str) -> HttpResponse:
    """One release: notes, commit, files with sizes and sha256, the manifest; writers
    attach and remove files."""
    design, role = load_design(request, owner, slug, need="write" if request.method == "POST" else None)
    release = selectors.design_release(design, tag)
    action = request.POST.get("action")
    form = ReleaseAssetForm(request.POST, request.FILES) if action == "upload" else ReleaseAssetForm()
    if action == "delete-file":
        name = request.POST.get("name", "")
        releases.release_asset_delete(design=design, user=signed_in_user(request), tag=tag, name=name)
        messages.success(request, f"Removed {name} from {tag}.")
        return redirect(request.path)
    if action == "upload" and form.is_valid():
        upload = form.cleaned_data["file"]
        name = form.cleaned_data["name"] or upload.name or ""
        ok, asset = form_call(
            form,
            releases.release_asset_upload,
            design=design,
            user=request.user,
            tag=tag,
            name=name,
            content=upload,
            content_type=content_type_for(name),
            size=upload.size,
        )
        if ok:
            messages.success(request, f"Attached {asset.name} to {tag}.")
            return redirect(request.path)
    return render_design_page(
        request,
        "designs/release.html",
        design,
        role,
        "tags",
        release=release,
        asset_form=form,
        max_asset_bytes=settings.FABHUB_RELEASE_ASSET_MAX_BYTES,
    )


# hub.uploads stops a file over this limit while it streams in.
design_release.upload_limit_setting = "FABHUB_RELEASE_ASSET_MAX_BYTES"  # type: ignore[attr-defined]


def _requester(request: HttpRequest) -> Viewer:
    # Downloads are fetched by scripts too: a token's owner, or the session's user. A
    # wrong token is a 404, like a design the requester may not see.
    try:
        found = resolve(request)
    except BadCredentials:
        raise Http404 from None
    return found[0] if found is not None else viewer(request)


def design_release_asset(
    request: HttpRequest, owner: str, slug: str, tag: str, name: str
) -> HttpResponseBase:
    """A release's file, for whoever may see the design; a 404 to anyone else."""
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
        asset = selectors.release_asset_get(design, tag=tag, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return serve_release_asset(request, asset)
