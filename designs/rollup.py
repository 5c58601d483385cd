"""An assembly as a person sees it: its stored checks (designs/services/assemblies.py)
read into the module tree, the rolled-up bill of materials, mass and bounding box, the
licence warnings and the upgrades on offer — from the database alone, a few queries
whatever the number of modules (one per nesting level).

Private means private: a module the viewer cannot see is counted, never named, its
problems are counted, not shown, and nothing of it is added up.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from designs import assemblies as files
from designs.meshes import MATERIAL_DENSITIES_G_CM3
from designs.models import AssemblyCheck, Design, MeshAnalysis, ModuleUse
from designs.selectors import designs_visible_to
from hub.auth import Viewer

DEFAULT_MATERIAL = "PLA"
DENSITIES = {name.lower(): density for name, density in MATERIAL_DENSITIES_G_CM3.items()}


@dataclass
class ModuleRow:
    path: str  # within its parent, with the parents' paths before it ("body › doors")
    depth: int
    pin: str
    quantity: int  # how many the whole assembly holds (parents' quantities multiplied in)
    own_quantity: int
    visible: bool
    design: Design | None = None
    release: str = ""
    latest_release: str = ""
    latest_release_commit: str = ""
    licence: str = ""
    attaches: list[str] = field(default_factory=list)
    provides: list[dict] = field(default_factory=list)
    needs: list[dict] = field(default_factory=list)
    nested: bool = False
    remote: bool = False
    url: str = ""
    matrix: list[float] = field(default_factory=list)
    bom_problem: str = ""
    top_path: str = ""  # the path at the top level, for upgrades

    @property
    def upgrade_available(self) -> bool:
        return bool(self.latest_release_commit) and self.latest_release_commit != self.pin and self.depth == 0

    @property
    def pinned_label(self) -> str:
        return self.release or self.pin[:10]


@dataclass
class BomRow:
    key: str
    description: str
    quantity: float
    by_module: dict[str, float]


@dataclass
class PlacedMesh:
    module: str
    path: str
    blob: str
    matrix: list[float]
    owner: str
    slug: str


@dataclass
class AssemblyView:
    design: Design
    commit: str
    is_assembly: bool
    problems: list[str]
    hidden_problems: int
    private_modules: int
    rows: list[ModuleRow]
    bom: list[BomRow]
    mass_g: float | None
    mass_estimated: bool
    bbox_min: list[float] | None
    bbox_max: list[float] | None
    licence_warnings: list[str]
    meshes: list[PlacedMesh]
    figures_missing: int
    unknown_materials: list[str] = field(default_factory=list)

    @property
    def upgrades(self) -> list[ModuleRow]:
        return [row for row in self.rows if row.visible and row.upgrade_available]

    @property
    def modules_count(self) -> int:
        return sum(1 for row in self.rows if row.visible)


def _problem_text(problem: Any) -> tuple[str, int | None]:
    if isinstance(problem, dict):
        return str(problem.get("message", "")), problem.get("module_design_id")
    return str(problem), None


def assembly_view(design: Design, *, check: AssemblyCheck, viewer: Viewer) -> AssemblyView:
    """`design` at `check.commit_sha` read for `viewer`."""
    named, nested_checks = _nested(check)
    visible_ids = set(designs_visible_to(viewer).values_list("pk", flat=True).filter(pk__in=named))
    problems, hidden = [], 0
    for problem in check.problems:
        message, module_id = _problem_text(problem)
        if module_id is not None and module_id not in visible_ids:
            hidden += 1
        else:
            problems.append(message)
    rows: list[ModuleRow] = []
    bom: dict[str, BomRow] = {}
    placed: list[PlacedMesh] = []
    private = 0
    mass, estimated, missing = 0.0, False, 0
    blobs_wanted: list[tuple[PlacedMesh, int, dict[str, str]]] = []
    level = [
        (module, "", 1, [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0], 0, "")
        for module in check.modules
    ]
    designs_by_id: dict[int, Design] = {}
    while level:
        ids = {module["design_id"] for module, *_ in level if module["design_id"] in visible_ids}
        designs_by_id.update(
            {d.pk: d for d in Design.objects.select_related("owner").filter(pk__in=ids - set(designs_by_id))}
        )
        next_level = []
        for module, parent, multiplier, parent_matrix, depth, top in level:
            module_id = module["design_id"]
            visible = module_id is None or module_id in visible_ids
            if module_id is not None and not visible:
                private += 1
                continue
            quantity = multiplier * int(module["quantity"])
            label = f"{parent} › {module['path']}" if parent else module["path"]
            matrix = files.compose(parent_matrix, module["matrix"])
            row = ModuleRow(
                path=label,
                depth=depth,
                pin=module["pin"],
                quantity=quantity,
                own_quantity=int(module["quantity"]),
                visible=True,
                design=designs_by_id.get(module_id) if module_id is not None else None,
                release=module["release"],
                latest_release=module["latest_release"],
                latest_release_commit=module["latest_release_commit"],
                licence=module["licence"],
                attaches=module["attaches"],
                provides=module["provides"],
                needs=module["needs"],
                nested=module["nested"],
                remote=module["remote"],
                url=module["url"],
                matrix=matrix,
                bom_problem=module["bom_problem"],
                top_path=top or module["path"],
            )
            rows.append(row)
            for line in module["bom"]:
                entry = bom.setdefault(line["key"], BomRow(line["key"], line["description"], 0.0, {}))
                entry.quantity += line["quantity"] * quantity
                entry.by_module[label] = entry.by_module.get(label, 0.0) + line["quantity"] * quantity
            if row.design is not None:
                for mesh in module["meshes"]:
                    placement = PlacedMesh(
                        module=label,
                        path=mesh["path"],
                        blob=mesh["blob"],
                        matrix=matrix,
                        owner=row.design.owner.username,
                        slug=row.design.slug,
                    )
                    placed.append(placement)
                    blobs_wanted.append((placement, quantity, module["materials"]))
            nested = nested_checks.get((module_id, module["pin"]))
            if nested is not None:
                next_level += [
                    (child, label, quantity, matrix, depth + 1, top or module["path"])
                    for child in nested.modules
                ]
        level = next_level
    analyses = {
        a.blob_sha: a
        for a in MeshAnalysis.objects.filter(
            blob_sha__in={p.blob for p, _, _ in blobs_wanted}, status=MeshAnalysis.Status.DONE
        )
    }
    low: list[float] | None = None
    high: list[float] | None = None
    unknown_materials: list[str] = []
    for placement, quantity, materials in blobs_wanted:
        analysis = analyses.get(placement.blob)
        figures = analysis.figures if analysis is not None else None
        if not figures:
            missing += 1
            continue
        material = materials.get(placement.path)
        # Materials match the density table whatever their case ("petg" is PETG).
        density = DENSITIES.get((material or DEFAULT_MATERIAL).lower())
        grams = abs(float(figures.get("volume_mm3") or 0.0)) / 1000.0 * density if density else None
        if grams is None and material and material not in unknown_materials:
            unknown_materials.append(material)
        if grams is None or material is None or not figures.get("mass_reliable"):
            estimated = True
        if grams is not None:
            mass += grams * quantity
        box_low, box_high = files.transformed_box(placement.matrix, figures["bbox_min"], figures["bbox_max"])
        low = box_low if low is None else [min(a, b) for a, b in zip(low, box_low, strict=True)]
        high = box_high if high is None else [max(a, b) for a, b in zip(high, box_high, strict=True)]
    return AssemblyView(
        design=design,
        commit=check.commit_sha,
        is_assembly=check.is_assembly,
        problems=problems,
        hidden_problems=hidden,
        private_modules=private,
        rows=rows,
        bom=sorted(bom.values(), key=lambda row: row.key.lower()),
        mass_g=round(mass, 1) if blobs_wanted and missing < len(blobs_wanted) else None,
        mass_estimated=estimated or missing > 0,
        bbox_min=low,
        bbox_max=high,
        licence_warnings=_licence_warnings(design, rows),
        meshes=placed,
        figures_missing=missing,
        unknown_materials=unknown_materials,
    )


def _nested(check: AssemblyCheck) -> tuple[set[int], dict[tuple[int, str], AssemblyCheck]]:
    """Every design the check names and the stored checks of its nested assemblies, read
    level by level (one query a level); the view reads them from here, not again."""
    found: set[int] = set()
    checks: dict[tuple[int, str], AssemblyCheck] = {}
    level = list(check.modules)
    while level:
        pairs = set()
        for module in level:
            if module["design_id"] is not None:
                found.add(module["design_id"])
                if module["nested"]:
                    pairs.add((module["design_id"], module["pin"]))
        fetched = _checks_for(pairs - checks.keys())
        checks.update(fetched)
        level = [child for nested in fetched.values() for child in nested.modules]
    return found, checks


def _checks_for(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], AssemblyCheck]:
    if not pairs:
        return {}
    rows = AssemblyCheck.objects.filter(
        design_id__in={design_id for design_id, _ in pairs}, commit_sha__in={commit for _, commit in pairs}
    )
    return {(row.design_id, row.commit_sha): row for row in rows if (row.design_id, row.commit_sha) in pairs}


def _licence_warnings(design: Design, rows: list[ModuleRow]) -> list[str]:
    warnings = []
    for row in rows:
        if row.design is None:
            continue
        warning = files.licence_warning(design.licence, row.licence, row.design.full_name)
        if warning and warning not in warnings:
            warnings.append(warning)
    return warnings


def bom_csv(view: AssemblyView) -> str:
    """The rolled-up BOM as CSV: one row per part, its total, then a column per module."""
    modules = sorted({module for row in view.bom for module in row.by_module})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["part", "description", "quantity", *modules])
    for row in view.bom:
        writer.writerow(
            [
                _csv_safe(row.key),
                _csv_safe(row.description),
                _number(row.quantity),
                *(_number(row.by_module.get(m, 0.0)) for m in modules),
            ]
        )
    return out.getvalue()


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _csv_safe(text: str) -> str:
    # A cell a spreadsheet would run as a formula is written as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def bom_difference(old: AssemblyView, new: AssemblyView) -> list[dict[str, Any]]:
    """How the rolled-up BOM changed between two versions of an assembly."""
    before = {row.key: row for row in old.bom}
    after = {row.key: row for row in new.bom}
    changes = []
    for key in sorted(set(before) | set(after), key=str.lower):
        was = before[key].quantity if key in before else 0.0
        now = after[key].quantity if key in after else 0.0
        if was != now:
            kind = "added" if key not in before else "removed" if key not in after else "changed"
            changes.append({"key": key, "kind": kind, "old": was, "new": now, "delta": now - was})
    return changes


def used_by(design: Design, *, viewer: Viewer) -> list[ModuleUse]:
    """The assemblies (forks included) whose default branch pins `design`, that `viewer` may see."""
    visible = designs_visible_to(viewer)
    return list(
        ModuleUse.objects.filter(module=design, assembly__in=visible)
        .select_related("assembly__owner")
        .order_by("assembly__owner__username", "assembly__slug")
    )


@dataclass
class InterfaceChange:
    name: str
    files: list[str]


def interface_changes(view: AssemblyView) -> dict[str, list[InterfaceChange]]:
    """For each upgrade on offer: the interfaces of that module which other modules of the
    assembly attach to and whose defining files the newer release changes (an upgrade
    that may no longer fit). Reads git, for the few modules with an upgrade only."""
    attached = {name for row in view.rows for name in row.attaches}
    found: dict[str, list[InterfaceChange]] = {}
    for row in view.upgrades:
        if row.design is None:
            continue
        used = [interface for interface in row.provides if interface["name"] in attached]
        newer = _provided_at(row.design, row.latest_release_commit)
        changed = row.design.repo.changed_paths(row.pin, row.latest_release_commit)
        changes = []
        for interface in used:
            paths = set(interface["files"]) | set(newer.get(interface["name"], ()))
            touched = sorted(path for path in paths if path in changed)
            if touched or interface["name"] not in newer:
                changes.append(InterfaceChange(interface["name"], touched or ["(no longer provided)"]))
        if changes:
            found[row.top_path] = changes
    return found


def _provided_at(design: Design, commit: str) -> dict[str, tuple[str, ...]]:
    entry = design.repo.entry(commit, files.MODULE_FILE)
    if entry is None or entry.kind != "blob" or (entry.size or 0) > files.MAX_FILE_BYTES:
        return {}
    manifest, _ = files.parse_module(design.repo.read_blob(entry.sha))
    return {interface.name: interface.files for interface in manifest.provides}


def assembly_bom_changes(
    design: Design, *, base: str, head: str, viewer: Viewer
) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """How a change (a proposal: `base` → `head`) moves the rolled-up BOM of an assembly,
    from stored checks: (changes or None when neither side is an assembly, the commits
    not read yet — the caller queues them)."""
    checks = {
        c.commit_sha: c for c in AssemblyCheck.objects.filter(design=design, commit_sha__in=[base, head])
    }
    missing = [commit for commit in (base, head) if commit not in checks]
    if missing:
        return None, missing
    if not (checks[base].is_assembly or checks[head].is_assembly):
        return None, []
    before = assembly_view(design, check=checks[base], viewer=viewer)
    after = assembly_view(design, check=checks[head], viewer=viewer)
    return bom_difference(before, after), []
