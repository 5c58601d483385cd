"""The assembly page of a design (docs/assemblies.md): its modules, rolled-up BOM and
figures, licence warnings, the upgrades on offer, and the assembled 3D view.

The page reads what the background check stored; a commit not checked yet is queued
and the page says so and reloads, rather than read a dozen repositories while someone
waits.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from designs import rollup, selectors, services
from designs.models import Design
from designs.views.pages import load_design, render_design_page
from hub.auth import signed_in_user
from hub.exceptions import NotFound
from hub.views import hub_page


def _commit(design: Design, ref: str) -> str:
    try:
        return selectors.design_resolve(design, ref)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@hub_page
def design_assembly(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    if design.repo.is_empty():
        return render_design_page(
            request, "designs/assembly.html", design, role, "assembly", view=None, pending=False
        )
    ref = request.GET.get("ref") or design.default_branch
    commit = _commit(design, ref)
    check = services.assemblies.assembly_check_stored(design, commit=commit)
    if check is None:
        return render_design_page(
            request, "designs/assembly.html", design, role, "assembly", view=None, pending=True, ref=ref
        )
    view = rollup.assembly_view(design, check=check, viewer=request.user)
    base_ref = request.GET.get("base", "")
    bom_changes = None
    if base_ref:
        base_check = services.assemblies.assembly_check_stored(design, commit=_commit(design, base_ref))
        if base_check is not None:
            bom_changes = rollup.bom_difference(
                rollup.assembly_view(design, check=base_check, viewer=request.user), view
            )
    return render_design_page(
        request,
        "designs/assembly.html",
        design,
        role,
        "assembly",
        view=view,
        pending=False,
        ref=ref,
        base_ref=base_ref,
        bom_changes=bom_changes,
        on_default=ref == design.default_branch,
        interface_changes=rollup.interface_changes(view) if view.upgrades else {},
    )


def _assembly_at_ref(request: HttpRequest, owner: str, slug: str) -> tuple[Design, rollup.AssemblyView]:
    """The design named in the URL, read as an assembly at `?ref=` (default branch); a
    404 while that commit is still being read."""
    try:
        design = selectors.design_get(user=request.user, owner=owner, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    ref = request.GET.get("ref") or design.default_branch
    check = services.assemblies.assembly_check_stored(design, commit=_commit(design, ref))
    if check is None:
        raise Http404("The assembly is still being read; try again in a moment.")
    return design, rollup.assembly_view(design, check=check, viewer=request.user)


def design_assembly_bom(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """The rolled-up BOM as CSV."""
    design, view = _assembly_at_ref(request, owner, slug)
    response = HttpResponse(rollup.bom_csv(view), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{design.slug}-bom.csv"'
    return response


def design_assembly_scene(request: HttpRequest, owner: str, slug: str) -> JsonResponse:
    """The assembled 3D view: each visible module's meshes and where they go."""
    _, view = _assembly_at_ref(request, owner, slug)
    parts = [
        {
            "module": mesh.module,
            "path": mesh.path,
            "url": reverse("design-mesh-data", args=[mesh.owner, mesh.slug, mesh.blob]),
            "matrix": mesh.matrix,
        }
        for mesh in view.meshes
    ]
    response = JsonResponse({"parts": parts})
    response["Cache-Control"] = "private, max-age=60"
    return response


@login_required
@require_POST
@hub_page
def design_assembly_upgrade(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, _ = load_design(request, owner, slug, need="write")
    proposal = services.upgrades.assembly_upgrade_propose(
        design=design,
        user=signed_in_user(request),
        path=request.POST.get("path", ""),
        release=request.POST.get("release", ""),
    )
    return redirect(reverse("design-proposal", args=[design.owner.username, design.slug, proposal.number]))
