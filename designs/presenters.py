"""What the pages show of diffs, BOMs and meshes: rows and labels built from plain data.

No request and no writes: views pass in what they read, templates get dicts and strings.
"""

from __future__ import annotations

import html
import json
from pathlib import PurePosixPath
from typing import Any

from django.http import QueryDict
from django.urls import reverse
from django.utils.safestring import mark_safe

from designs.diffs import FileDiff
from designs.git import TreeEntry
from designs.meshes import fits, group_colour, is_mesh_path
from designs.models import Design
from designs.paths import is_image_path
from designs.selectors import (
    analyses_for_blobs,
    declared_units,
    figures_at,
    parse_build_volume,
    thumbnail_path,
)
from hub.exceptions import ValidationError

TEXT_SNIFF_BYTES = 8000


def looks_like_text(data: bytes) -> bool:
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


def _patch_html(patch: str) -> str:
    """A unified diff as the page's coloured lines, built here rather than by a template
    loop: a page of 100 patches has thousands of lines, which the loop took most of a
    request to render."""
    # The standard library's escape, as Django's does, without its per-call lazy-string check.
    return mark_safe(  # noqa: S308 -- every line is escaped
        "".join(f'<span class="{cls}">{html.escape(line)}</span>' for cls, line in _patch_lines(patch))
    )


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


def diff_rows(
    design: Design,
    diffs: list[FileDiff],
    *,
    query: QueryDict | None = None,
    pending: set[int] | frozenset[int] = frozenset(),
) -> list[dict[str, Any]]:
    """What the diff template shows per file. `query` is the page's own query string: a
    deferred file (over the page's DiffBudget) links to the same page showing it alone.
    `pending`: indexes of the files whose comparison is still being computed; `n` numbers
    the rows from 1, as the page's fill-in names them."""

    def alone(path: str) -> str:
        params = query.copy() if query is not None else QueryDict(mutable=True)
        params["file"] = path
        return "?" + params.urlencode()

    return [
        {
            "n": n + 1,
            "pending": n in pending,
            "file": d,
            "show_alone": alone(d.path) if d.kind == "deferred" else "",
            "patch_html": _patch_html(d.detail.get("patch", "")) if d.kind in ("text", "bom") else "",
            "bom_rows": _bom_rows(d.detail) if d.kind == "bom" else [],
            "mesh": _mesh_diff(design, d) if d.kind == "mesh" else None,
            "picture": _picture_diff(design, d) if is_image_path(d.path) and d.kind != "submodule" else None,
        }
        for n, d in enumerate(diffs)
    ]


def _picture_diff(design: Design, change: FileDiff) -> dict[str, str] | None:
    """The before and after of a picture (side by side, swipe, onion skin on the page)."""
    name = change.path.rsplit("/", 1)[-1]
    old_name = (change.old_path or change.path).rsplit("/", 1)[-1]
    args = [design.owner.username, design.slug]
    old = reverse("design-picture", args=[*args, change.old_sha, old_name]) if change.old_sha else ""
    new = reverse("design-picture", args=[*args, change.new_sha, name]) if change.new_sha else ""
    return {"old": old, "new": new} if old or new else None


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
    """A figure to `digits` places with a true minus sign; a value that rounds to zero
    reads 0.0, never −0.0 (a tiny negative, or the float −0.0 itself)."""
    text = f"{value:,.{digits}f}"
    if text.startswith("-") and not any(c in "123456789" for c in text):
        text = text[1:]
    return text.replace("-", "−")


def _signed(value: float, digits: int = 1) -> str:
    """A change to `digits` places: +1.5, −1.5, and 0.0 (no sign) when it rounds to zero."""
    text = _number(value, digits)
    return f"+{text}" if value > 0 and any(c in "123456789" for c in text) else text


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
        steps = (_signed(n - o) for o, n in zip(old, new, strict=False))
        return " × ".join(steps) + " mm"
    if unit == "cm3":
        return f"{_signed((new - old) / 1000, 2)} cm³"
    if unit == "cm2":
        return f"{_signed((new - old) / 100, 1)} cm²"
    if unit == "g":
        return f"{_signed(new - old, 1)} g"
    sign = "+" if new > old else ""
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


def figure_rows(old: dict | None, new: dict | None) -> list[dict[str, Any]]:
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
    figure = _signed if signed else _number
    if number and key.endswith("_mm3"):
        return f"{figure(value / 1000, 2)} cm³"
    if number and key.endswith("_mm2"):
        return f"{figure(value / 100, 1)} cm²"
    if number and key.endswith("_mm"):
        return f"{figure(value, 2)} mm"
    if number and key.endswith("_deg"):
        return f"{figure(value, 1)}°"
    if isinstance(value, float):
        return figure(value, 3)
    if isinstance(value, int):
        return f"{'+' if signed and value > 0 else ''}{value:,}".replace("-", "−")
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        parts = [figure(v, 2) for v in value]
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
        f"{_share(region['share'])} of the surface"
    )


def _share(fraction: float) -> str:
    """A part of the surface as a percentage; a part too small to show reads "under 0.1 %",
    never "0.0 %" (the region exists, so it is not nothing)."""
    if fraction < 0.0005:
        return "under 0.1 %"
    return f"{_number(fraction * 100, 1)} %"


def _geometry_row(key: str, value: Any, *, signed: bool = False) -> dict[str, Any]:
    label = GEOMETRY_LABELS.get(key) or key.rpartition(".")[2].replace("_", " ").capitalize()
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return {"label": label, "text": "", "items": [_region_text(v) for v in value]}
    return {"label": label, "text": _geometry_value(key, value, signed=signed), "items": []}


def geometry_rows(geometry: dict | None, *, hide: tuple[str, ...] = ()) -> list[dict[str, Any]]:
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
    """One side of a mesh diff: None where the file is absent."""
    return None if sha is None else _mesh_version(design, sha, summary)


def _mesh_version(design: Design, sha: str, summary: dict | None) -> dict[str, Any]:
    """One version of a mesh as the pages show it: status, figures, and where its data is."""
    status = summary["status"] if summary else "not-analysed"
    done = status == "done"
    args = [design.owner.username, design.slug, sha]
    has_thumbnail = done and thumbnail_path(sha).exists()
    return {
        "sha": sha,
        "status": status,
        "waiting": status in MESH_WAITING,
        "reason": (summary or {}).get("reason") or "",
        "figures": (summary or {}).get("figures") if done else None,
        "data_url": reverse("design-mesh-data", args=args) if done else None,
        "extra_url": reverse("design-mesh-extra", args=args) if done else None,
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
        "figure_rows": figure_rows(old and old["figures"], new and new["figures"]),
        # With both figure sets, their Change column already shows the deltas.
        "geometry_rows": geometry_rows(geometry, hide=("delta",) if both else ()),
        "geometry_reason": change.detail.get("geometry_reason") or "",
        "geometry_pending": bool(change.detail.get("geometry_pending")),
        "geometry_failed": bool(change.detail.get("geometry_failed")),
        "geometry_id": change.detail.get("geometry_id"),
        "geometry_retryable": bool(change.detail.get("geometry_retryable")),
    }


def mesh_page(design: Design, *, sha: str, entry: TreeEntry, build_volume: str) -> dict[str, Any]:
    """The file page's 3D view, figures and fit check for a mesh file."""
    row = analyses_for_blobs([entry.sha]).get(entry.sha)
    units = declared_units(design, sha=sha, paths=[entry.path]).get(entry.path)
    summary = (
        {"status": row.status, "figures": figures_at(row.figures, units), "reason": row.reason}
        if row
        else None
    )
    mesh = _mesh_version(design, entry.sha, summary)
    figures = mesh["figures"] or {}
    mesh["figure_rows"] = figure_rows(None, figures) if figures else []
    mesh["mass_reliable"] = figures.get("mass_reliable", figures.get("watertight"))
    mesh.update(_parts(figures))
    volume_text = build_volume.strip()
    mesh["build_volume"] = volume_text
    mesh["presets"] = BUILD_VOLUME_PRESETS
    if volume_text and figures.get("obb_size"):
        try:
            mesh["fits"] = bool(fits(figures["obb_size"], parse_build_volume(volume_text)))
        except ValidationError as exc:
            mesh["fit_error"] = exc.message
    return mesh


# Bodies coloured one by one in the 3D view (meshes.render.MAX_COLOURED_BODIES): the
# smaller ones share the last colour there, and here.
COLOURED_BODIES = 64


def _parts(figures: dict) -> dict[str, Any]:
    """The bodies and objects of a mesh for the file page: how its volume was found, a row
    per body and per object (with the colour the 3D view gives it) and the overlaps."""
    method = figures.get("volume_method") or "single"
    bodies = figures.get("body_figures") or []
    objects = figures.get("objects") or []
    body_rows = [
        {
            "number": body["number"],
            "colour": "" if objects else group_colour(min(body["number"], COLOURED_BODIES)),
            "triangles": f"{body['triangles']:,}",
            "volume": _mesh_value("cm3", body["volume_mm3"]),
            "area": _mesh_value("cm2", body["area_mm2"]),
            "size": _mesh_value("xyz", body["size"]),
            "closed": body["watertight"] and body["winding_consistent"],
        }
        for body in bodies
    ]
    object_rows = [
        {
            "name": obj["name"],
            "colour": obj["colour"] or group_colour(number),
            "colour_given": bool(obj["colour"]),
            "material": obj["material"],
            "triangles": f"{obj['triangles']:,}",
            "volume": _mesh_value("cm3", obj["volume_mm3"]),
            "size": _mesh_value("xyz", obj["size"]),
        }
        for number, obj in enumerate(objects, start=1)
    ]
    overlaps = [
        f"Bodies {pair['bodies'][0]} and {pair['bodies'][1]} share {_mesh_value('cm3', pair['shared_mm3'])}"
        for pair in figures.get("overlapping_bodies") or []
    ]
    return {
        "volume_method": method,
        "volume_note": figures.get("volume_note") or "",
        "body_rows": body_rows,
        "bodies_total": figures.get("bodies") or 0,
        "object_rows": object_rows,
        "overlap_rows": overlaps,
    }


# -- CAD files the hub does not analyse ---------------------------------------------------

# By extension: what the file is, and why it is not measured, for the file page.
CAD_FORMATS = {
    ".fcstd": ("FreeCAD document", "FreeCAD document (only its thumbnail is shown)"),
    ".f3d": (
        "Autodesk Fusion archive",
        "a Fusion archive only Fusion opens; export STEP or 3MF to have it measured",
    ),
    ".f3z": (
        "Autodesk Fusion archive",
        "a Fusion archive only Fusion opens; export STEP or 3MF to have it measured",
    ),
    ".sldprt": ("SolidWorks part", "a closed format only SolidWorks reads; export STEP to have it measured"),
    ".sldasm": (
        "SolidWorks assembly",
        "a closed format only SolidWorks reads; export STEP to have it measured",
    ),
    ".slddrw": ("SolidWorks drawing", "a 2D drawing in a closed format; only 3D parts are measured"),
    ".ipt": (
        "Autodesk Inventor part",
        "a closed format only Inventor reads; export STEP to have it measured",
    ),
    ".iam": (
        "Autodesk Inventor assembly",
        "a closed format only Inventor reads; export STEP to have it measured",
    ),
    ".idw": ("Autodesk Inventor drawing", "a 2D drawing in a closed format; only 3D parts are measured"),
    ".catpart": ("CATIA part", "a closed format only CATIA reads; export STEP to have it measured"),
    ".catproduct": ("CATIA product", "a closed format only CATIA reads; export STEP to have it measured"),
    ".prt": ("Creo or NX part", "a closed format; export STEP to have it measured"),
    ".x_t": ("Parasolid part (text)", "Parasolid is not read by this hub; export STEP to have it measured"),
    ".x_b": ("Parasolid part (binary)", "Parasolid is not read by this hub; export STEP to have it measured"),
    ".iges": ("IGES exchange file", "IGES is not read by this hub; export STEP to have it measured"),
    ".igs": ("IGES exchange file", "IGES is not read by this hub; export STEP to have it measured"),
    ".brep": ("OpenCASCADE BREP", "BREP is not read by this hub; export STEP to have it measured"),
    ".3dm": (
        "Rhino 3D model",
        "Rhino models are not read by this hub; export STEP or STL to have it measured",
    ),
    ".skp": (
        "SketchUp model",
        "SketchUp models are not read by this hub; export STL or 3MF to have it measured",
    ),
    ".blend": (
        "Blender scene",
        "Blender scenes are not read by this hub; export STL, 3MF or glTF to have it measured",
    ),
    ".dxf": ("DXF drawing", "a 2D drawing (laser cutting, CNC): only 3D parts are measured"),
    ".dwg": ("AutoCAD drawing", "a closed format only AutoCAD reads; export DXF or STEP"),
    ".scad": (
        "OpenSCAD program",
        "a program that makes geometry, not geometry: render it to STL or 3MF and commit that to have it measured",
    ),
}


def cad_file(name: str) -> dict[str, Any] | None:
    """The file page's label for a CAD file the hub does not analyse: what it is and why
    it is not measured; None for other files."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in CAD_FORMATS:
        return None
    label, why = CAD_FORMATS[suffix]
    return {"label": label, "why": why, "freecad": suffix == ".fcstd"}


def entry_rows(design: Design, entries: list) -> list[tuple[Any, str | None]]:
    """(entry, thumbnail URL or None) for a file listing: one query for all its meshes;
    a FreeCAD document shows the picture it carries once its page has taken it out."""
    meshes = [e.sha for e in entries if e.kind == "blob" and is_mesh_path(e.path)]
    analyses = analyses_for_blobs(meshes) if meshes else {}
    done = {sha for sha, row in analyses.items() if row.status == "done"}
    done |= {e.sha for e in entries if e.kind == "blob" and e.path.lower().endswith(".fcstd")}
    rows = []
    for entry in entries:
        thumb = None
        if entry.sha in done and thumbnail_path(entry.sha).exists():
            thumb = reverse("design-thumbnail", args=[design.owner.username, design.slug, entry.sha])
        rows.append((entry, thumb))
    return rows


def with_covers(designs: list[Design]) -> list[Design]:
    """Set `cover_url` on each design: its cover thumbnail, if one has been rendered."""
    for d in designs:
        sha = d.cover_blob_sha
        d.cover_url = (
            reverse("design-thumbnail", args=[d.owner.username, d.slug, sha])
            if sha and thumbnail_path(sha).exists()
            else None
        )
    return designs
