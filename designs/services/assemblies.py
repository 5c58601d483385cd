"""Assemblies: a design whose commits pin other designs, its modules, as git submodules
(docs/assemblies.md). Pushes are taken as git takes them; after each ref move the hub
reads the default branch's head as an assembly (`assembly_check`) and keeps what it
found — the modules, resolved to designs of this hub where it can, their interfaces and
BOMs, and every problem as a sentence — so pages read a row, not a dozen repositories.
A proposal cannot be merged into the default branch of an assembly whose result has
problems (`assembly_problems_at`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from designs import assemblies as files
from designs.bom import BomParseError, bom_lines, is_bom_path
from designs.git import GitError, TreeEntry
from designs.meshes import is_mesh_path
from designs.models import AssemblyCheck, Design, ModuleUse, PullMirror
from designs.selectors import designs_visible_to
from hub.models import User

# A module's BOM is kept with the check up to this many lines (a BOM is rarely longer).
MAX_BOM_LINES = 2_000
MAX_BOM_BYTES = 4 * 1024 * 1024
# A module's meshes listed for the assembled view and the rolled-up figures.
MAX_MESHES_PER_MODULE = 200


@dataclass
class _Walk:
    """The designs on the way down from the assembly being checked: a module that is one
    of them closes a cycle."""

    stack: list[tuple[int, str]]
    # The depth limit was met below: what was found depends on where the walk began, so
    # the nested checks read on the way are not kept (read alone, they go deeper).
    limited: bool = False
    snapshots: dict[tuple[int, str], _Snapshot] = field(default_factory=dict)

    def snapshot(self, design: Design, commit: str) -> _Snapshot:
        key = (design.pk, commit)
        if key not in self.snapshots:
            self.snapshots[key] = _Snapshot(design, commit)
        return self.snapshots[key]

    def names(self, design: Design) -> str:
        return " → ".join([*(name for _, name in self.stack), design.full_name])


def _problem(message: str, *, module_design_id: int | None = None) -> dict[str, Any]:
    return {"message": message, "module_design_id": module_design_id}


class _Snapshot:
    """One commit of one design as the check reads it: listed once (one git process),
    its few small files read together (two more)."""

    def __init__(self, design: Design, commit: str) -> None:
        self.repo = design.repo
        # With sizes: the few files read are bounded without asking git again.
        self.entries = {entry.path: entry for entry in self.repo.tree_entries(commit, sizes=True)}

    def gitlinks(self) -> dict[str, str]:
        return {path: entry.sha for path, entry in self.entries.items() if entry.kind == "submodule"}

    def blob(self, path: str) -> TreeEntry | None:
        entry = self.entries.get(path)
        return entry if entry is not None and entry.kind == "blob" else None

    def read(self, paths: list[str], *, limit: int = files.MAX_FILE_BYTES) -> dict[str, bytes]:
        """The files among `paths` that exist; one over `limit` reads as `limit`+1 bytes
        (so the format readers refuse it by its size) without being read."""
        wanted = {path: entry for path in paths if (entry := self.blob(path)) is not None}
        small = [entry.sha for entry in wanted.values() if (entry.size or 0) <= limit]
        data = self.repo.read_blobs(small)
        return {path: data.get(entry.sha, b"\0" * (limit + 1)) for path, entry in wanted.items()}

    def bom_path(self) -> str | None:
        """The root `bom.csv`, or the first root CSV named like a BOM."""
        root = sorted(
            path for path in self.entries if "/" not in path and is_bom_path(path) and self.blob(path)
        )
        return next((p for p in root if p.lower() == "bom.csv"), None) or next(
            (p for p in root if "bom" in p.lower()), None
        )

    def meshes(self, wanted: list[str] | None) -> list[dict[str, str]]:
        found = [
            {"path": path, "blob": entry.sha}
            for path, entry in sorted(self.entries.items())
            if entry.kind == "blob" and is_mesh_path(path) and (wanted is None or path in wanted)
        ]
        return found[:MAX_MESHES_PER_MODULE]


def _module_design(address: files.ModuleAddress, *, seen_by: User) -> Design | None:
    """The design of this hub a module URL names — by owner and slug, or a pull mirror of
    another hub's URL standing in for it — among those the assembly's owner may see: a
    design they cannot see is "not found", so pinning cannot probe for private designs."""
    visible = designs_visible_to(seen_by).select_related("owner")
    if address.local:
        return visible.filter(owner__username=address.owner, slug__iexact=address.slug).first()
    urls = [address.url, address.url.removesuffix(".git")]
    mirror = (
        PullMirror.objects.filter(url__in=urls, design__in=visible).select_related("design__owner").first()
    )
    return mirror.design if mirror else None


def _module_bom(snapshot: _Snapshot, raw: bytes | None, path: str | None) -> tuple[list[dict[str, Any]], str]:
    """The lines of the module's BOM, and a sentence when it could not be read."""
    if path is None or raw is None:
        return [], ""
    if len(raw) > MAX_BOM_BYTES:
        return [], f"{path} is over {MAX_BOM_BYTES // (1024 * 1024)} MB; it is not added up."
    try:
        lines = bom_lines(raw.decode("utf-8", errors="replace"))
    except BomParseError as exc:
        return [], f"{path}: {exc}"
    return [
        {"key": line.key, "quantity": line.quantity, "description": line.description}
        for line in lines[:MAX_BOM_LINES]
    ], ""


def _check_commit(design: Design, commit: str, walk: _Walk) -> AssemblyCheck:
    """The stored check of `design` at `commit`, computed if it is not there yet."""
    stored = AssemblyCheck.objects.filter(design=design, commit_sha=commit).first()
    if stored is not None:
        return stored
    limited_before = walk.limited
    walk.limited = False
    is_assembly, problems, modules = _read_assembly(design, commit, walk)
    limited_here, walk.limited = walk.limited, walk.limited or limited_before
    if limited_here and walk.stack:
        return AssemblyCheck(
            design=design, commit_sha=commit, is_assembly=is_assembly, problems=problems, modules=modules
        )
    with transaction.atomic():
        check, _ = AssemblyCheck.objects.update_or_create(
            design=design,
            commit_sha=commit,
            defaults={
                "is_assembly": is_assembly,
                "problems": problems,
                "modules": modules,
                "checked_at": timezone.now(),
            },
        )
    return check


def _read_assembly(design: Design, commit: str, walk: _Walk) -> tuple[bool, list[dict], list[dict]]:
    snapshot = walk.snapshot(design, commit)
    links = snapshot.gitlinks()
    if not links and snapshot.blob(files.ASSEMBLY_FILE) is None:
        return False, [], []
    problems: list[dict] = []
    spec = files.AssemblySpec()
    raw = snapshot.read([files.ASSEMBLY_FILE])
    if files.ASSEMBLY_FILE in raw:
        spec, found = files.parse_assembly(raw[files.ASSEMBLY_FILE])
        problems += [_problem(message) for message in found]
    gitmodules = snapshot.blob(files.GITMODULES_FILE)
    entries: dict[str, files.SubmoduleEntry] = {}
    if gitmodules is not None:
        too_big = (gitmodules.size or 0) > files.MAX_FILE_BYTES
        listing = None if too_big else snapshot.repo.config_blob_entries(gitmodules.sha)
        if too_big:
            problems.append(
                _problem(f".gitmodules: larger than {files.MAX_FILE_BYTES // 1024} KiB; not read.")
            )
        elif listing is None:
            problems.append(_problem(".gitmodules: git cannot read it as a config file."))
        else:
            found_entries, found = files.parse_gitmodules(listing)
            problems += [_problem(message) for message in found]
            entries = {entry.path: entry for entry in found_entries}
    specs = {module.path: module for module in spec.modules}
    for path in specs:
        if path not in links:
            problems.append(
                _problem(
                    f"{files.ASSEMBLY_FILE}: module {path!r} is not a submodule of this design at this commit."
                )
            )
    if len(links) > files.MAX_MODULES:
        problems.append(_problem(f"At most {files.MAX_MODULES} modules; this commit pins {len(links)}."))
        return True, problems, []
    roots = files.hub_roots_of(settings.FABHUB_PUBLIC_URL)
    modules = []
    walk.stack.append((design.pk, design.full_name))
    try:
        for path, pin in sorted(links.items()):
            modules.append(
                _read_module(design, path, pin, entries.get(path), specs.get(path), roots, walk, problems)
            )
    finally:
        walk.stack.pop()
    _check_interfaces(modules, problems)
    return True, problems, modules


def _read_module(
    design: Design,
    path: str,
    pin: str,
    entry: files.SubmoduleEntry | None,
    spec: files.ModuleSpec | None,
    roots: list[str],
    walk: _Walk,
    problems: list[dict],
) -> dict[str, Any]:
    spec = spec or files.ModuleSpec(path=path)
    module: dict[str, Any] = {
        "path": path,
        "pin": pin,
        "url": entry.url if entry else "",
        "design_id": None,
        "name": "",
        "release": "",
        "latest_release": "",
        "latest_release_commit": "",
        "licence": "",
        "quantity": spec.quantity,
        "position": list(spec.position),
        "rotation": list(spec.rotation),
        "matrix": files.transform_matrix(spec.position, spec.rotation),
        "files": spec.files,
        "attaches": spec.attaches,
        "materials": spec.materials,
        "provides": [],
        "needs": [],
        "bom": [],
        "bom_problem": "",
        "meshes": [],
        "nested": False,
        "remote": False,
    }
    if entry is None:
        problems.append(
            _problem(f"{path}: a submodule with no entry in .gitmodules, so nobody can clone it.")
        )
        return module
    address = files.resolve_module_url(
        entry.url, assembly_owner=design.owner.username, assembly_slug=design.slug, hub_roots=roots
    )
    found = _module_design(address, seen_by=design.owner)
    if found is None:
        if address.local:
            problems.append(_problem(f"{path}: module {address.owner}/{address.slug} not found on this hub."))
        else:
            module["remote"] = True  # another hub's, with no mirror here: pinned, not read
        return module
    module.update(design_id=found.pk, name=found.full_name, licence=found.licence)
    if any(design_id == found.pk for design_id, _ in walk.stack):
        problems.append(
            _problem(f"{path}: a cycle of assemblies: {walk.names(found)}.", module_design_id=found.pk)
        )
        return module
    repo = found.repo
    tags = repo.tags()
    try:
        reachable = any(tag.target == pin for tag in tags) or repo.is_reachable(pin)
    except GitError:
        reachable = False
    if not reachable:
        problems.append(
            _problem(
                f"{path}: commit {pin[:10]} is not in the history of {found.full_name}.",
                module_design_id=found.pk,
            )
        )
        return module
    at_pin = [tag.name for tag in tags if tag.target == pin]
    module["release"] = at_pin[0] if at_pin else ""
    if tags:
        module["latest_release"], module["latest_release_commit"] = tags[0].name, tags[0].target
    if spec.release:
        named = next((tag for tag in tags if tag.name == spec.release), None)
        if named is None:
            problems.append(
                _problem(
                    f"{path}: {files.ASSEMBLY_FILE} names release {spec.release!r}, which {found.full_name} does not have.",
                    module_design_id=found.pk,
                )
            )
        elif named.target != pin:
            problems.append(
                _problem(
                    f"{path}: {files.ASSEMBLY_FILE} names release {spec.release} ({named.target[:10]}) "
                    f"but the submodule pins {pin[:10]}.",
                    module_design_id=found.pk,
                )
            )
        else:
            module["release"] = spec.release
    snapshot = walk.snapshot(found, pin)
    bom_path = snapshot.bom_path()
    raw = snapshot.read([files.MODULE_FILE, *([bom_path] if bom_path else [])], limit=MAX_BOM_BYTES)
    manifest_raw = raw.get(files.MODULE_FILE)
    if manifest_raw is not None:
        manifest, found_problems = files.parse_module(manifest_raw)
        problems += [_problem(f"{path}: {message}", module_design_id=found.pk) for message in found_problems]
        module["provides"] = [
            {"name": i.name, "description": i.description, "files": list(i.files)} for i in manifest.provides
        ]
        module["needs"] = [
            {"name": i.name, "description": i.description, "files": list(i.files)} for i in manifest.needs
        ]
    module["bom"], module["bom_problem"] = _module_bom(
        snapshot, raw.get(bom_path) if bom_path else None, bom_path
    )
    module["meshes"] = snapshot.meshes(spec.files)
    if len(walk.stack) >= files.MAX_DEPTH:
        walk.limited = True
        problems.append(
            _problem(f"{path}: assemblies nested deeper than {files.MAX_DEPTH} levels are not read.")
        )
        return module
    nested = _check_commit(found, pin, walk)
    module["nested"] = nested.is_assembly
    for problem in nested.problems:
        message = problem.get("message", "") if isinstance(problem, dict) else str(problem)
        problems.append(_problem(f"{path} › {message}", module_design_id=found.pk))
    return module


def _check_interfaces(modules: list[dict[str, Any]], problems: list[dict]) -> None:
    provided = {interface["name"] for module in modules for interface in module["provides"]}
    for module in modules:
        for name in module["attaches"]:
            if name not in provided:
                problems.append(
                    _problem(
                        f"{module['path']}: attaches to interface {name!r}, which no module of this assembly provides.",
                        module_design_id=module["design_id"],
                    )
                )


def assembly_check(design: Design, *, commit: str) -> AssemblyCheck:
    """Read `design` at `commit` as an assembly (cached per commit)."""
    return _check_commit(design, commit, _Walk(stack=[]))


def assembly_problems_at(design: Design, *, commit: str) -> list[str]:
    """The problems of `design` at `commit`, for a merge into the default branch to refuse."""
    return [problem["message"] for problem in assembly_check(design, commit=commit).problems]


def assembly_refresh(*, design_id: int) -> bool:
    """After a ref move: check the default branch's head and keep the "used by" rows of
    the modules it pins. Returns whether the design is an assembly."""
    design = Design.objects.select_related("owner").filter(pk=design_id).first()
    if design is None:
        return False
    head = design.repo.branch_head(design.default_branch)
    if head is None:
        ModuleUse.objects.filter(assembly=design).delete()
        return False
    check = assembly_check(design, commit=head)
    uses = {
        module["path"]: module
        for module in check.modules
        if module["design_id"] is not None and module["design_id"] != design.pk
    }
    with transaction.atomic():
        ModuleUse.objects.filter(assembly=design).exclude(path__in=list(uses)).delete()
        for path, module in uses.items():
            ModuleUse.objects.update_or_create(
                assembly=design,
                path=path,
                defaults={
                    "module_id": module["design_id"],
                    "commit_sha": module["pin"],
                    "release": module["release"],
                },
            )
    return check.is_assembly


def assemblies_recheck_users(*, module: Design) -> int:
    """A module moved (a new release, a visibility change): the assemblies that use it
    check their heads again, so "you pin 0.2, 0.3 is out" appears. Returns how many."""
    uses = ModuleUse.objects.filter(module=module).select_related("assembly__owner")
    assemblies = {use.assembly_id: use.assembly for use in uses}
    for assembly in assemblies.values():
        head = assembly.repo.branch_head(assembly.default_branch)
        if head:
            # Only the head's check is read again: older commits keep what they found.
            AssemblyCheck.objects.filter(design=assembly, commit_sha=head).delete()
        assembly_refresh(design_id=assembly.pk)
    return len(assemblies)
