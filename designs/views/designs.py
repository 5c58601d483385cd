"""Server-rendered pages of designs: thin views over designs.selectors and designs.services.

Every view is wrapped in `hub_page`, which turns NotFound into a 404 and PermissionDenied
into a 403; refusals that belong to a form are shown in it through `form_call`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import InvalidPage, Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from designs import analysis, forms, mirrors, paths, proposals, selectors, services
from designs.diffs import FileDiff, compare
from designs.git import Commit
from designs.models import Design, Licence
from designs.rawfiles import serve_blob
from hub.auth import user_for_token
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.models import User
from hub.views import form_call, hub_page

DESIGNS_PER_PAGE = 20
COMMITS_PER_PAGE = 30
MAX_SHOWN_TEXT_BYTES = 512 * 1024
TEXT_SNIFF_BYTES = 8000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
WRITERS = ("owner", "write")


def _requester(request: HttpRequest):
    """Session user, or the owner of a Bearer token (raw files are fetched by scripts too)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith(("bearer ", "token ")):
        found = user_for_token(header.split(None, 1)[1].strip())
        if found is None:
            raise Http404
        return found[0]
    return request.user


def design_raw(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponse:
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
        _, entry = selectors.design_file(design, rev=request.GET.get("ref"), path=path)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return serve_blob(request, design, entry, download="download" in request.GET)


def design_thumbnail(request: HttpRequest, owner: str, slug: str, blob_sha: str) -> HttpResponse:
    """The PNG rendered for a mesh blob, if the blob is in a design the requester can see."""
    from designs.analysis import thumbnail_path

    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    path = thumbnail_path(blob_sha)
    if len(blob_sha) != 40 or not path.exists() or not design.repo.has_object(blob_sha):
        raise Http404("No thumbnail for this file (yet).")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"  # a blob's picture never changes
    response["ETag"] = f'"{blob_sha}-png"'
    return response


def design_mesh_data(request: HttpRequest, owner: str, slug: str, blob_sha: str) -> HttpResponse:
    """The triangles of a mesh blob for the 3D viewer (float32 LE, 9 per triangle, mm)."""
    from designs.analysis import viewer_path

    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    path = viewer_path(blob_sha)
    if len(blob_sha) != 40 or not path.exists() or not design.repo.has_object(blob_sha):
        raise Http404("No 3D data for this file (yet).")
    response = FileResponse(path.open("rb"), content_type="application/octet-stream")
    response["Cache-Control"] = "private, max-age=86400"  # a blob's triangles never change
    response["ETag"] = f'"{blob_sha}-bin"'
    return response


# -- helpers ------------------------------------------------------------------------------


def _load(
    request: HttpRequest, owner: str, slug: str, *, need: str | None = None
) -> tuple[Design, str | None]:
    """The design as the requester may see it, and their role; `need` 'write' or 'owner'."""
    design = selectors.design_get(user=request.user, owner=owner, slug=slug)
    role = selectors.design_role(design, request.user)
    if need == "write" and role not in WRITERS:
        raise PermissionDenied(f"You cannot change {design.full_name}.")
    if need == "owner" and role != "owner":
        raise PermissionDenied(f"Only {design.owner.username} can change the settings of {design.full_name}.")
    return design, role


def _render(
    request: HttpRequest, template: str, design: Design, role: str | None, tab: str, **context: Any
) -> HttpResponse:
    upstream = None
    if design.forked_from_id is not None:
        # The upstream may have turned private since: link to it only if this person sees it.
        visible = selectors.designs_visible_to(request.user).filter(pk=design.forked_from_id)
        upstream = design.forked_from if visible.exists() else None
    # A pull mirror changes only by its refresh: no page offers to write to it.
    mirror = mirrors.design_mirror(design)
    return render(
        request,
        template,
        {
            "design": design,
            "role": role,
            "can_write": role in WRITERS and mirror is None,
            "is_owner": role == "owner",
            "upstream": upstream,
            "mirror": mirror,
            "open_proposals": proposals.proposals_of(design, status="open").count(),
            "tab": tab,
            **context,
        },
    )


def _ref(request: HttpRequest, design: Design) -> str:
    return request.GET.get("ref") or design.default_branch


def _refs(design: Design, ref: str) -> dict[str, Any]:
    """What the branch/tag selector needs, and the branch writes would go to (or None)."""
    branches = [name for name, _ in design.repo.branches()]
    tags = [tag.name for tag in design.repo.tags()]
    return {
        "ref": ref,
        "branches": branches,
        "tag_names": tags,
        "ref_is_other": ref not in branches and ref not in tags,
        "write_branch": ref if ref in branches or not branches else None,
    }


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder on the way to `path`, for a breadcrumb trail."""
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _page_number(request: HttpRequest) -> int:
    try:
        number = int(request.GET.get("page") or 1)
    except ValueError:
        raise Http404("No such page.") from None
    if number < 1:
        raise Http404("No such page.")
    return number


def _looks_like_text(data: bytes) -> bool:
    head = data[:TEXT_SNIFF_BYTES]
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        return exc.start >= len(head) - 4 and len(data) > TEXT_SNIFF_BYTES
    return True


def _patch_lines(patch: str) -> list[tuple[str, str]]:
    """(css class, line) of a unified diff, without git's header lines before the first hunk."""
    lines: list[tuple[str, str]] = []
    for line in patch.splitlines():
        if line.startswith("@@"):
            lines.append(("hunk", line))
        elif not lines:
            continue
        elif line.startswith("+"):
            lines.append(("add", line))
        elif line.startswith("-"):
            lines.append(("del", line))
        elif line.startswith("\\"):
            lines.append(("note", line))
        else:
            lines.append(("ctx", line))
    return lines


def _bom_rows(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """BOM row changes with the (column, old, new) values worth showing for each."""
    rows = []
    for row in detail.get("rows", []):
        old, new = row.get("old") or {}, row.get("new") or {}
        if row["kind"] == "changed":
            fields = [(name, old.get(name), new.get(name)) for name in row.get("changed_fields", [])]
        elif row["kind"] == "added":
            fields = [(name, None, value) for name, value in new.items() if value]
        else:
            fields = [(name, value, None) for name, value in old.items() if value]
        rows.append({**row, "fields": fields})
    return rows


def _diff_rows(design: Design, diffs: list[FileDiff]) -> list[dict[str, Any]]:
    return [
        {
            "file": d,
            "lines": _patch_lines(d.detail.get("patch", "")) if d.kind in ("text", "bom") else [],
            "bom_rows": _bom_rows(d.detail) if d.kind == "bom" else [],
            "mesh": _mesh_diff(design, d) if d.kind == "mesh" else None,
        }
        for d in diffs
    ]


def _with_query(url: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{url}?{query}" if query else url


def _detail_url(design: Design, ref: str | None = None) -> str:
    url = reverse("design-detail", args=[design.owner.username, design.slug])
    return _with_query(url, ref=ref if ref != design.default_branch else None)


# -- meshes -------------------------------------------------------------------------------

# The figures shown for a mesh, in order: (key in MeshFigures.to_dict(), label, unit).
MESH_FIGURES = (
    ("size", "Size (bounding box)", "xyz"),
    ("obb_size", "Oriented size", "xyz"),
    ("volume_mm3", "Volume", "cm3"),
    ("area_mm2", "Surface area", "cm2"),
    ("triangles", "Triangles", "count"),
    ("bodies", "Bodies", "count"),
    ("watertight", "Watertight", "bool"),
    ("winding_consistent", "Consistent winding", "bool"),
    ("degenerate_faces", "Degenerate faces", "count"),
    ("duplicate_faces", "Duplicate faces", "count"),
    ("non_manifold_edges", "Non-manifold edges", "count"),
    ("boundary_edges", "Open edges (holes)", "count"),
    ("units", "Units", "text"),
    ("format", "Format", "text"),
)
# Friendly names for the geometric diff's keys (nested ones as "outer.inner"); any other
# key is shown under its own name, so new figures appear without a change here.
GEOMETRY_LABELS = {
    "delta.triangles": "Triangles",
    "delta.volume_mm3": "Volume",
    "delta.area_mm2": "Surface area",
    "delta.size": "Size",
    "hausdorff_mm": "Largest distance between the surfaces (Hausdorff)",
    "mean_distance_mm": "Mean distance between the surfaces",
    "old_to_new_max_mm": "Furthest old point from the new surface",
    "new_to_old_max_mm": "Furthest new point from the old surface",
    "threshold_mm": "Moved by more than",
    "regions": "Moved regions",
    "samples": "Points sampled per surface",
    "exact_refinement": "Exact distances",
    "identical": "Identical geometry",
    "aligned": "Old part moved onto the new one before measuring",
    "alignment_rotation_deg": "Old part turned by (to align)",
    "alignment_shift_mm": "Old part shifted by (to align)",
    "as_placed_hausdorff_mm": "Largest distance as placed (not aligned)",
    "as_placed_mean_distance_mm": "Mean distance as placed (not aligned)",
}
# The two versions' own measurements (the figures table shows them side by side) and the
# alignment's matrix (the 3D view applies it).
GEOMETRY_HIDDEN = ("old", "new", "alignment_rotation")
MESH_WAITING = ("pending", "running")
# Offered in the fit check's list: (build volume in mm, a printer that has it).
BUILD_VOLUME_PRESETS = (
    ("250x210x210", "Prusa i3 MK3S"),
    ("180x180x180", "Prusa MINI"),
    ("220x220x250", "Creality Ender-3"),
    ("256x256x256", "Bambu Lab X1"),
)


def _number(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}".replace("-", "−")


def _mesh_value(unit: str, value: Any) -> str:
    if value is None:
        return "—"
    if unit == "xyz":
        return " × ".join(_number(v) for v in value) + " mm"
    if unit == "cm3":
        return f"{_number(value / 1000, 2)} cm³"
    if unit == "cm2":
        return f"{_number(value / 100, 1)} cm²"
    if unit == "bool":
        return "yes" if value else "no"
    if unit == "g":
        return f"{_number(value, 1)} g"
    if unit == "text":
        return str(value)
    return f"{value:,}"


def _mesh_delta(unit: str, old: Any, new: Any) -> str:
    """new − old in words, or '' when there is nothing to say."""
    if old is None or new is None or old == new:
        return ""
    if unit in ("bool", "text"):
        return "changed"
    if unit == "xyz":
        steps = (("+" if n > o else "") + _number(n - o) for o, n in zip(old, new, strict=False))
        return " × ".join(steps) + " mm"
    sign = "+" if new > old else ""
    if unit in ("cm3", "cm2", "g"):
        return sign + _mesh_value(unit, new - old)
    return f"{sign}{new - old:,}".replace("-", "−")


def _figure_row(label: str, unit: str, old: Any, new: Any, *, defect: bool = False) -> dict[str, Any]:
    return {
        "label": label,
        "estimate": unit == "g",
        "old": _mesh_value(unit, old),
        "new": _mesh_value(unit, new),
        "delta": _mesh_delta(unit, old, new),
        "defect": defect and bool(new),  # a count of defects worth drawing the eye to
    }


def _with_units_source(figures: dict | None) -> dict:
    """The figures with their units said with where they came from: 'mm (assumed)'."""
    figures = dict(figures or {})
    if figures.get("units") and figures.get("units_source"):
        figures["units"] = f"{figures['units']} ({figures['units_source']})"
    return figures


def _figure_rows(old: dict | None, new: dict | None) -> list[dict[str, Any]]:
    """Rows of (label, old, new, delta) for one or two figure sets; masses come last."""
    old, new = _with_units_source(old), _with_units_source(new)
    rows = [
        _figure_row(label, unit, old.get(key), new.get(key), defect=key.endswith(("_faces", "_edges")))
        for key, label, unit in MESH_FIGURES
        if key in old or key in new
    ]
    old_mass, new_mass = old.get("mass_g") or {}, new.get("mass_g") or {}
    for material in sorted(set(old_mass) | set(new_mass)):
        rows.append(_figure_row(f"Mass in {material}", "g", old_mass.get(material), new_mass.get(material)))
    return rows


def _geometry_value(key: str, value: Any, *, signed: bool = False) -> str:
    """A geometric diff value, formatted by its key's unit suffix or its shape."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = isinstance(value, (int, float))
    sign = "+" if signed and number and value > 0 else ""
    if number and key.endswith("_mm3"):
        return f"{sign}{_number(value / 1000, 2)} cm³"
    if number and key.endswith("_mm2"):
        return f"{sign}{_number(value / 100, 1)} cm²"
    if number and key.endswith("_mm"):
        return f"{sign}{_number(value, 2)} mm"
    if number and key.endswith("_deg"):
        return f"{sign}{_number(value, 1)}°"
    if isinstance(value, float):
        return sign + _number(value, 3)
    if isinstance(value, int):
        return f"{sign}{value:,}".replace("-", "−")
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        parts = [("+" if signed and v > 0 else "") + _number(v, 2) for v in value]
        return " × ".join(parts) + (" mm" if len(value) == 3 else "")
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_geometry_value(k, v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_geometry_value(key, v) for v in value) if value else "none"
    return str(value)


def _region_text(region: dict) -> str:
    """A moved region in words, e.g. 'Added around 10 × 4 × 2 mm: up to 1.5 mm, 3 % of the surface'."""
    if not {"kind", "centroid", "max_distance_mm", "share"} <= region.keys():
        return _geometry_value("", region)
    where = " × ".join(_number(v, 1) for v in region["centroid"])
    return (
        f"{str(region['kind']).capitalize()} around {where} mm: up to {_number(region['max_distance_mm'], 2)} mm, "
        f"{region['share']:.1%} of the surface"
    )


def _geometry_row(key: str, value: Any, *, signed: bool = False) -> dict[str, Any]:
    label = GEOMETRY_LABELS.get(key) or key.rpartition(".")[2].replace("_", " ").capitalize()
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return {"label": label, "text": "", "items": [_region_text(v) for v in value]}
    return {"label": label, "text": _geometry_value(key, value, signed=signed), "items": []}


def _geometry_rows(geometry: dict | None, *, hide: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of the geometric diff; a nested dict (the deltas) gives a row per entry."""
    rows = []
    for key, value in (geometry or {}).items():
        if key in GEOMETRY_HIDDEN or key in hide:
            continue
        if isinstance(value, dict):
            rows += [_geometry_row(f"{key}.{k}", v, signed=key == "delta") for k, v in value.items()]
        else:
            rows.append(_geometry_row(key, value))
    return rows


def _mesh_side(design: Design, sha: str | None, summary: dict | None) -> dict[str, Any] | None:
    """One version of a mesh as the pages show it: status, figures, and where its data is."""
    if sha is None:
        return None
    status = summary["status"] if summary else "not-analysed"
    done = status == "done"
    args = [design.owner.username, design.slug, sha]
    has_thumbnail = done and analysis.thumbnail_path(sha).exists()
    return {
        "sha": sha,
        "status": status,
        "waiting": status in MESH_WAITING,
        "reason": (summary or {}).get("reason") or "",
        "figures": (summary or {}).get("figures") if done else None,
        "data_url": reverse("design-mesh-data", args=args) if done else None,
        "thumbnail_url": reverse("design-thumbnail", args=args) if has_thumbnail else None,
    }


def _old_transform(geometry: dict) -> str:
    """The geometric diff's move of the old part onto the new, as JSON for the 3D view."""
    rotation, shift = geometry.get("alignment_rotation"), geometry.get("alignment_shift_mm")
    if not (geometry.get("aligned") and rotation and shift):
        return ""
    return json.dumps({"rotation": rotation, "shift": shift})


def _mesh_diff(design: Design, change: FileDiff) -> dict[str, Any]:
    old = _mesh_side(design, change.old_sha, change.detail.get("old"))
    new = _mesh_side(design, change.new_sha, change.detail.get("new"))
    both = bool(old and old["figures"] and new and new["figures"])
    geometry = change.detail.get("geometry") or {}
    return {
        "old": old,
        "new": new,
        "thumbnail_url": (new and new["thumbnail_url"]) or (old and old["thumbnail_url"]),
        "old_transform": _old_transform(geometry),
        "figure_rows": _figure_rows(old and old["figures"], new and new["figures"]),
        # With both figure sets, their Change column already shows the deltas.
        "geometry_rows": _geometry_rows(geometry, hide=("delta",) if both else ()),
        "geometry_reason": change.detail.get("geometry_reason") or "",
    }


def _mesh_page(request: HttpRequest, design: Design, sha: str, entry) -> dict[str, Any]:
    """The file page's 3D view, figures and fit check for a mesh file."""
    row = analysis.analyses_for_blobs([entry.sha]).get(entry.sha)
    units = analysis.declared_units(design, sha=sha, paths=[entry.path]).get(entry.path)
    summary = (
        {"status": row.status, "figures": analysis.figures_at(row.figures, units), "reason": row.reason}
        if row
        else None
    )
    mesh = _mesh_side(design, entry.sha, summary)
    figures = mesh["figures"] or {}
    mesh["figure_rows"] = _figure_rows(None, figures) if figures else []
    mesh["mass_reliable"] = figures.get("mass_reliable", figures.get("watertight"))
    volume_text = (request.GET.get("build_volume") or "").strip()
    mesh["build_volume"] = volume_text
    mesh["presets"] = BUILD_VOLUME_PRESETS
    if volume_text and figures.get("obb_size"):
        from designs.meshes import fits

        try:
            mesh["fits"] = bool(fits(figures["obb_size"], analysis.parse_build_volume(volume_text)))
        except ValidationError as exc:
            mesh["fit_error"] = exc.message
    return mesh


def _entry_rows(design: Design, entries: list) -> list[tuple[Any, str | None]]:
    """(entry, thumbnail URL or None) for a file listing: one query for all its meshes."""
    meshes = [e.sha for e in entries if e.kind == "blob" and analysis.is_mesh_path(e.path)]
    analyses = analysis.analyses_for_blobs(meshes) if meshes else {}
    done = {sha for sha, row in analyses.items() if row.status == "done"}
    rows = []
    for entry in entries:
        thumb = None
        if entry.sha in done and analysis.thumbnail_path(entry.sha).exists():
            thumb = reverse("design-thumbnail", args=[design.owner.username, design.slug, entry.sha])
        rows.append((entry, thumb))
    return rows


def _with_covers(designs: list[Design]) -> list[Design]:
    """Set `cover_url` on each design: its cover thumbnail, if one has been rendered."""
    for d in designs:
        sha = d.cover_blob_sha
        d.cover_url = (
            reverse("design-thumbnail", args=[d.owner.username, d.slug, sha])
            if sha and analysis.thumbnail_path(sha).exists()
            else None
        )
    return designs


# -- listing and creating -----------------------------------------------------------------


@hub_page
def design_list(request: HttpRequest) -> HttpResponse:
    form = forms.SearchForm(request.GET)
    designs = selectors.designs_visible_to(request.user)
    if form.is_valid():
        query = form.cleaned_data
        if query["q"]:
            text = query["q"]
            designs = designs.filter(
                Q(title__icontains=text) | Q(slug__icontains=text) | Q(summary__icontains=text)
            )
        if query["tag"]:
            designs = designs.filter(tags__name=query["tag"].strip().lower())
        if query["licence"]:
            designs = designs.filter(licence=query["licence"])
        if query["owner"]:
            designs = designs.filter(owner__username=query["owner"].strip())
    page = Paginator(designs, DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    filtered = any(request.GET.get(name) for name in ("q", "tag", "licence", "owner"))
    return render(
        request,
        "designs/list.html",
        {"form": form, "page": page, "designs": _with_covers(list(page.object_list)), "filtered": filtered},
    )


@login_required
@hub_page
def design_new(request: HttpRequest) -> HttpResponse:
    form = forms.DesignCreateForm(request.POST or None, initial={"licence": Licence.CERN_OHL_S})
    if request.method == "POST" and form.is_valid():
        ok, design = form_call(form, services.design_create, owner=request.user, **form.cleaned_data)
        if ok:
            messages.success(request, f"Created {design.full_name}. Upload its first files.")
            return redirect(_detail_url(design))
    return render(request, "designs/new.html", {"form": form})


# -- browsing -----------------------------------------------------------------------------


@hub_page
def design_detail(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    ref = _ref(request, design)
    fork_count = selectors.designs_visible_to(request.user).filter(forked_from=design).count()
    context: dict[str, Any] = {
        **_refs(design, ref),
        "fork_count": fork_count,
        "clone_url": selectors.clone_url(design, request),
        "upstream_status": proposals.design_upstream_status(design, request.user),
    }
    mirrors.mirror_refresh_if_due(design)
    if design.repo.is_empty():
        return _render(request, "designs/detail.html", design, role, "files", empty=True, **context)
    sha, entries = selectors.design_tree(design, rev=ref)
    readme_path, readme_html = selectors.design_readme(design, sha=sha)
    return _render(
        request,
        "designs/detail.html",
        design,
        role,
        "files",
        sha=sha,
        entry_rows=_entry_rows(design, entries),
        last_commit=design.repo.commit(sha),
        readme_path=readme_path,
        readme_html=readme_html,
        **context,
    )


@hub_page
def design_tree(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    ref = _ref(request, design)
    path = path.strip("/")
    sha, entries = selectors.design_tree(design, rev=ref, path=path)
    return _render(
        request,
        "designs/tree.html",
        design,
        role,
        "files",
        sha=sha,
        entry_rows=_entry_rows(design, entries),
        path=path,
        parent_path=path.rpartition("/")[0],
        crumbs=_crumbs(path),
        **_refs(design, ref),
    )


@hub_page
def design_blob(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    ref = _ref(request, design)
    sha, entry = selectors.design_file(design, rev=ref, path=path)
    raw_url = _with_query(
        reverse("design-raw", args=[design.owner.username, design.slug, entry.path]), ref=sha
    )
    text = None
    is_image = entry.name.lower().endswith(IMAGE_EXTENSIONS)
    mesh = _mesh_page(request, design, sha, entry) if analysis.is_mesh_path(entry.path) else None
    lfs = selectors.design_lfs_pointer(design, entry)
    size = lfs.size if lfs else entry.size
    too_large = (size or 0) > MAX_SHOWN_TEXT_BYTES
    if not is_image and not mesh and not too_large and not lfs:
        data = design.repo.read_blob(entry.sha)
        if _looks_like_text(data):
            text = data.decode("utf-8", "replace")
    refs = _refs(design, ref)
    context: dict[str, Any] = {}
    if role in WRITERS and refs["write_branch"]:
        branch = refs["write_branch"]
        context["delete_form"] = forms.DeleteFileForm(
            initial={"path": entry.path, "branch": branch, "message": f"Delete {entry.path}"}
        )
        context["rename_form"] = forms.RenameFileForm(
            initial={
                "path": entry.path,
                "branch": branch,
                "new_path": entry.path,
                "message": f"Rename {entry.path}",
            }
        )
    folder, _, _ = entry.path.rpartition("/")
    return _render(
        request,
        "designs/blob.html",
        design,
        role,
        "files",
        sha=sha,
        entry=entry,
        size=size,
        lfs=lfs,
        raw_url=raw_url,
        text=text,
        is_image=is_image,
        mesh=mesh,
        too_large=too_large,
        crumbs=_crumbs(folder),
        **refs,
        **context,
    )


@hub_page
def design_history(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    ref = _ref(request, design)
    path = (request.GET.get("path") or "").strip("/")
    number = _page_number(request)
    total, commits = selectors.design_history(
        design,
        rev=ref,
        path=path or None,
        offset=(number - 1) * COMMITS_PER_PAGE,
        limit=COMMITS_PER_PAGE,
    )
    # git already read just this page; the paginator only numbers the pages.
    try:
        page = Paginator(range(total), COMMITS_PER_PAGE).page(number)
    except InvalidPage:
        raise Http404("No such page.") from None
    return _render(
        request,
        "designs/history.html",
        design,
        role,
        "history",
        commits=commits,
        page=page,
        total=total,
        path=path,
        **_refs(design, ref),
    )


@hub_page
def design_commit_page(request: HttpRequest, owner: str, slug: str, sha: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    sha = selectors.design_resolve(design, sha)
    commit: Commit = design.repo.commit(sha)
    parent = commit.parents[0] if commit.parents else None
    files = _diff_rows(design, compare(design.repo, parent, sha))
    return _render(
        request,
        "designs/commit.html",
        design,
        role,
        "history",
        commit=commit,
        body=commit.message.partition("\n")[2].strip(),
        files=files,
        has_meshes=any(row["mesh"] for row in files),
    )


@hub_page
def design_compare(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    form = forms.CompareForm(request.GET)
    context: dict[str, Any] = {"form": form, **_refs(design, design.default_branch)}
    if form.is_valid():
        head_rev = form.cleaned_data["head"] or design.default_branch
        ok, head = form_call(form, selectors.design_resolve, design=design, rev=head_rev)
        base = None
        if ok and form.cleaned_data["base"]:
            ok, base = form_call(form, selectors.design_resolve, design=design, rev=form.cleaned_data["base"])
        elif ok:
            # No base given: show what the head commit itself changed.
            parents = design.repo.commit(head).parents
            base = parents[0] if parents else None
        if ok:
            files = _diff_rows(design, compare(design.repo, base, head))
            context.update(base=base, head=head, files=files, has_meshes=any(row["mesh"] for row in files))
    return _render(request, "designs/compare.html", design, role, "compare", **context)


# -- changing files -----------------------------------------------------------------------


def _commit_uploads(
    *, design: Design, author: User, files: list, folder: str, message: str, branch: str
) -> str:
    folder = paths.clean_dir(folder)
    uploads = [services.Upload(path=paths.join(folder, f.name), content=f) for f in files]
    return services.design_commit(
        design=design, author=author, message=message, branch=branch, uploads=uploads
    )


@login_required
@hub_page
def design_upload(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="write")
    branches = [name for name, _ in design.repo.branches()]
    wanted = request.GET.get("ref") or design.default_branch
    form = forms.UploadForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
        branches=branches,
        default=design.default_branch,
        initial={
            "branch": wanted if wanted in branches else design.default_branch,
            "folder": request.GET.get("folder", ""),
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, sha = form_call(form, _commit_uploads, design=design, author=request.user, **data)
        if ok:
            count = len(data["files"])
            files = "1 file" if count == 1 else f"{count} files"
            messages.success(request, f"Committed {files} to {data['branch']} ({sha[:7]}).")
            return redirect(_detail_url(design, data["branch"]))
    return _render(request, "designs/upload.html", design, role, "files", form=form, branches=branches)


@login_required
@hub_page
def design_delete_file(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="write")
    path = request.GET.get("path", "")
    form = forms.DeleteFileForm(
        request.POST or None,
        initial={"path": path, "branch": _ref(request, design), "message": f"Delete {path}"},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, sha = form_call(
            form,
            services.design_commit,
            design=design,
            author=request.user,
            message=data["message"],
            branch=data["branch"],
            deletes=[data["path"]],
        )
        if ok:
            messages.success(request, f"Deleted {data['path']} in {sha[:7]}.")
            return redirect(_detail_url(design, data["branch"]))
    return _render(request, "designs/file_change.html", design, role, "files", form=form, action="delete")


@login_required
@hub_page
def design_rename_file(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="write")
    path = request.GET.get("path", "")
    form = forms.RenameFileForm(
        request.POST or None,
        initial={
            "path": path,
            "new_path": path,
            "branch": _ref(request, design),
            "message": f"Rename {path}",
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, sha = form_call(
            form,
            services.design_commit,
            design=design,
            author=request.user,
            message=data["message"],
            branch=data["branch"],
            renames=[services.Rename(data["path"], data["new_path"])],
        )
        if ok:
            messages.success(request, f"Renamed {data['path']} to {data['new_path']} in {sha[:7]}.")
            url = reverse(
                "design-blob",
                args=[design.owner.username, design.slug, paths.clean_path(data["new_path"])],
            )
            return redirect(_with_query(url, ref=data["branch"]))
    return _render(request, "designs/file_change.html", design, role, "files", form=form, action="rename")


# -- branches and tags --------------------------------------------------------------------


def _create_or_delete(request: HttpRequest, design: Design, form_class, *, create, delete, created, deleted):
    """The create/delete actions shared by the branches and tags pages.

    Returns (form, redirect or None); `created`/`deleted` format the success message.
    """
    action = request.POST.get("action")
    form = form_class(request.POST if action == "create" else None)
    if action == "delete":
        name = request.POST.get("name", "")
        delete(design=design, user=request.user, name=name)
        messages.success(request, deleted.format(name=name))
        return form, redirect(request.path)
    if action == "create" and form.is_valid():
        ok, _ = form_call(form, create, design=design, user=request.user, **form.cleaned_data)
        if ok:
            messages.success(request, created.format(name=form.cleaned_data["name"]))
            return form, redirect(request.path)
    return form, None


@hub_page
def design_branches(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="write" if request.method == "POST" else None)
    form, done = _create_or_delete(
        request,
        design,
        forms.BranchCreateForm,
        create=services.branch_create,
        delete=services.branch_delete,
        created="Created branch {name}.",
        deleted="Deleted branch {name}.",
    )
    if done:
        return done
    return _render(
        request,
        "designs/branches.html",
        design,
        role,
        "branches",
        form=form,
        branch_list=selectors.design_branches(design),
    )


@hub_page
def design_tags(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="write" if request.method == "POST" else None)
    form, done = _create_or_delete(
        request,
        design,
        forms.TagCreateForm,
        create=services.tag_create,
        delete=services.tag_delete,
        created="Tagged {name}.",
        deleted="Deleted tag {name}.",
    )
    if done:
        return done
    return _render(request, "designs/tags.html", design, role, "tags", form=form, tag_list=design.repo.tags())


# -- forks and settings -------------------------------------------------------------------


@login_required
@hub_page
def design_fork(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    form = forms.ForkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, fork = form_call(
            form,
            services.design_fork,
            design=design,
            user=request.user,
            slug=form.cleaned_data["slug"] or None,
        )
        if ok:
            messages.success(request, f"Forked {design.full_name} to {fork.full_name}.")
            return redirect(_detail_url(fork))
    return _render(request, "designs/fork.html", design, role, "forks", form=form)


@hub_page
def design_forks(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    forks = selectors.designs_visible_to(request.user).filter(forked_from=design)
    page = Paginator(forks, DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    return _render(request, "designs/forks.html", design, role, "forks", page=page)


@login_required
@hub_page
def design_settings(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="owner")
    action = request.POST.get("action")
    branches = [name for name, _ in design.repo.branches()]
    form = forms.DesignSettingsForm(
        request.POST if action == "update" else None, design=design, branches=branches
    )
    collaborator_form = forms.CollaboratorForm(request.POST if action == "add-collaborator" else None)
    if action == "update" and form.is_valid():
        ok, _ = form_call(form, services.design_update, design=design, **form.cleaned_data)
        if ok:
            messages.success(request, "Settings saved.")
            return redirect(request.path)
    elif action == "add-collaborator" and collaborator_form.is_valid():
        username = collaborator_form.cleaned_data["username"].strip()
        user = User.objects.filter(username=username).first()
        if user is None:
            collaborator_form.add_error("username", f"There is no user named {username!r}.")
        else:
            ok, _ = form_call(
                collaborator_form,
                services.collaborator_set,
                design=design,
                actor=request.user,
                user=user,
                role=collaborator_form.cleaned_data["role"],
            )
            if ok:
                messages.success(
                    request, f"{user.username} can now {collaborator_form.cleaned_data['role']}."
                )
                return redirect(request.path)
    elif action == "remove-collaborator":
        user = User.objects.filter(username=request.POST.get("username", "")).first()
        if user is None:
            raise NotFound("No such collaborator.")
        services.collaborator_remove(design=design, actor=request.user, user=user)
        messages.success(request, f"{user.username} is no longer a collaborator.")
        return redirect(request.path)
    collaborators = design.collaborators.select_related("user").order_by("user__username")
    return _render(
        request,
        "designs/settings.html",
        design,
        role,
        "settings",
        form=form,
        collaborator_form=collaborator_form,
        collaborators=collaborators,
    )


# -- proposals ------------------------------------------------------------------------------

PROPOSAL_FILTERS = ("open", "merged", "closed", "all")


@hub_page
def design_proposals(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    status = request.GET.get("status") or "open"
    if status not in PROPOSAL_FILTERS:
        raise Http404("No such list.")
    found = proposals.proposals_of(design, status=None if status == "all" else status)
    page = Paginator(found, DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    can_propose = request.user.is_authenticated and bool(proposals.proposal_sources_for(request.user, design))
    return _render(
        request,
        "designs/proposals.html",
        design,
        role,
        "proposals",
        page=page,
        status=status,
        filters=PROPOSAL_FILTERS,
        can_propose=can_propose,
    )


@login_required
@hub_page
def design_proposal_new(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug)
    sources = {d.full_name: d for d in proposals.proposal_sources_for(request.user, design)}
    if not sources:
        raise PermissionDenied(
            f"You can write to no design of {design.full_name}'s fork network: fork it first."
        )
    branches = [name for name, _ in design.repo.branches()]
    wanted = request.GET.get("source") or next(
        (name for name, d in sources.items() if d.pk != design.pk), design.full_name
    )
    form = forms.ProposalForm(
        request.POST or None,
        sources=list(sources),
        branches=branches,
        initial={
            "source": wanted,
            "source_branch": request.GET.get("branch") or design.default_branch,
            "target_branch": design.default_branch,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, proposal = form_call(
            form,
            proposals.proposal_create,
            target=design,
            user=request.user,
            source=sources[data["source"]],
            source_branch=data["source_branch"],
            target_branch=data["target_branch"],
            title=data["title"],
            description=data["description"],
        )
        if ok:
            messages.success(request, f"Opened proposal #{proposal.number}.")
            return redirect("design-proposal", owner=owner, slug=slug, number=proposal.number)
    return _render(request, "designs/proposal_new.html", design, role, "proposals", form=form)


def _proposal_markdown(design: Design, head: str, text: str) -> str:
    """A proposal's or comment's Markdown, sanitised; relative links point into the proposal's head."""
    from hub.markdown import render_markdown

    if not text.strip():
        return ""
    args = [design.owner.username, design.slug]

    def raw_url(path: str) -> str:
        return f"{reverse('design-raw', args=[*args, path])}?ref={head}"

    def page_url(path: str) -> str:
        return f"{reverse('design-blob', args=[*args, path])}?ref={head}"

    return render_markdown(text, raw_url=raw_url, page_url=page_url)


@hub_page
def design_proposal(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    design, role = _load(request, owner, slug)
    proposal = proposals.proposal_get(design, number)
    action = request.POST.get("action")
    comment_form = forms.CommentForm(request.POST if action == "comment" else None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in to take part.")
        here = reverse("design-proposal", args=[owner, slug, proposal.number])
        if action == "comment" and comment_form.is_valid():
            ok, _ = form_call(
                comment_form,
                proposals.proposal_comment,
                proposal=proposal,
                user=request.user,
                body=comment_form.cleaned_data["body"],
            )
            if ok:
                return redirect(here + "#comments")
        elif action == "merge":
            sha = proposals.proposal_merge(
                proposal=proposal,
                user=request.user,
                expected_head=request.POST.get("expected_head") or None,
                expected_target=request.POST.get("expected_target") or None,
            )
            messages.success(request, f"Merged into {proposal.target_branch} ({sha[:7]}).")
            return redirect(here)
        elif action == "close":
            proposals.proposal_close(proposal=proposal, user=request.user)
            messages.success(request, f"Closed proposal #{proposal.number}.")
            return redirect(here)
        elif action == "reopen":
            proposals.proposal_reopen(proposal=proposal, user=request.user)
            messages.success(request, f"Reopened proposal #{proposal.number}.")
            return redirect(here)
    proposal = proposals.proposal_fresh(proposal)
    files: list[dict[str, Any]] = []
    if proposal.head_sha and design.repo.has_object(proposal.head_sha):
        _, _, diffs = proposals.proposal_diff(proposal)
        files = _diff_rows(design, diffs)
    comments = list(proposal.comments.select_related("author"))
    for comment in comments:
        comment.html = _proposal_markdown(design, proposal.head_sha, comment.body)
    return _render(
        request,
        "designs/proposal.html",
        design,
        role,
        "proposals",
        proposal=proposal,
        description_html=_proposal_markdown(design, proposal.head_sha, proposal.description),
        commits=proposals.proposal_commits(proposal),
        files=files,
        head=proposal.head_sha,
        has_meshes=any(row["mesh"] for row in files),
        comments=comments,
        comment_form=comment_form,
        can_change=proposals.proposal_can_change(proposal, request.user),
        can_merge=role in WRITERS and proposal.is_open,
    )


# -- keeping a fork up to date ------------------------------------------------------------


@login_required
@hub_page
def design_sync(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="write")
    if request.method == "POST":
        result = proposals.design_sync_upstream(
            design=design, user=request.user, merge=request.POST.get("action") == "merge"
        )
        words = {
            "up-to-date": "Already up to date with the upstream.",
            "fast-forward": f"Fast-forwarded {design.default_branch} to the upstream ({(result.head or '')[:7]}).",
            "merged": f"Merged the upstream into {design.default_branch} ({(result.head or '')[:7]}).",
        }
        messages.success(request, words[result.outcome])
        return redirect(_detail_url(design))
    status = proposals.design_upstream_status(design, request.user)
    if status is None:
        raise NotFound(f"{design.full_name} is not a fork of a design you can see.")
    return _render(request, "designs/sync.html", design, role, "files", status=status)


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
            return redirect(_detail_url(design))
    return render(request, "designs/mirror_new.html", {"form": form})


@login_required
@hub_page
def design_mirror_refresh(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, _ = _load(request, owner, slug)
    if request.method == "POST":
        mirror = mirrors.mirror_refresh_now(design=design, user=request.user)
        if mirror.last_error:
            messages.error(request, f"The refresh failed: {mirror.last_error}")
        else:
            messages.success(request, "Refreshed from the remote.")
    return redirect(_detail_url(design))


@login_required
@hub_page
def design_mirrors(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = _load(request, owner, slug, need="owner")
    mirror = mirrors.design_mirror(design)
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
        mirrors.mirror_stop(design=design, user=request.user)
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
            pushed = mirrors.push_mirror_push_now(design=design, user=request.user, mirror_id=mirror_id)
            if pushed.last_error:
                messages.error(request, f"The push failed: {pushed.last_error}")
            else:
                messages.success(request, "Pushed.")
        elif action == "remove-push":
            mirrors.push_mirror_remove(design=design, user=request.user, mirror_id=mirror_id)
            messages.success(request, "Push mirror removed.")
        else:
            enabled = action == "enable-push"
            mirrors.push_mirror_update(design=design, user=request.user, mirror_id=mirror_id, enabled=enabled)
            messages.success(request, "Push mirror turned " + ("on." if enabled else "off."))
        return redirect(here)
    return _render(
        request,
        "designs/mirrors.html",
        design,
        role,
        "settings",
        pull_form=pull_form,
        push_form=push_form,
        push_mirrors=mirrors.push_mirrors_of(design),
    )


def _mirror_id(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("No such push mirror.") from None
