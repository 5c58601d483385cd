"""Assemblies: a design whose commits pin other designs, its modules, as git submodules
(docs/assemblies.md). Pushes are taken as git takes them; after each ref move the hub
reads the default branch's head as an assembly (`assembly_check`) and keeps what it
found — the modules, resolved to designs of this hub where it can, their interfaces and
BOMs, and every problem as a sentence — so pages read a row, not a dozen repositories.
A proposal cannot be merged into the default branch of an assembly whose result has
problems (`assembly_problems_at`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from designs import assemblies as files
from designs.bom import BomParseError, bom_lines, is_bom_path
from designs.git import GitError, ObjectReader, Repository, Tag, TreeEntry
from designs.meshes import is_mesh_path
from designs.models import AssemblyCheck, Design, ModuleUse, PullMirror
from designs.selectors import designs_visible_to
from hub.models import User
from hub.queue import enqueue

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
    # The checks of (design, commit) found stored (None: looked for, not there) or read on
    # the way; those read are written together when the walk ends.
    checks: dict[tuple[int, str], AssemblyCheck | None] = field(default_factory=dict)
    read: list[AssemblyCheck] = field(default_factory=list)

    def look_up(self, keys: list[tuple[int, str]]) -> None:
        """Find the stored checks among `keys` in one query: the modules of an assembly."""
        wanted = [key for key in keys if key not in self.checks]
        if not wanted:
            return
        stored = AssemblyCheck.objects.filter(
            design_id__in={design_id for design_id, _ in wanted},
            commit_sha__in={commit for _, commit in wanted},
        )
        found = {(check.design_id, check.commit_sha): check for check in stored}
        for key in wanted:
            self.checks[key] = found.get(key)

    def snapshot(self, design: Design, commit: str) -> _Snapshot:
        """`design` at `commit`, read once per walk (as a module on the way, or else here
        as the assembly the walk began with)."""
        key = (design.pk, commit)
        if key not in self.snapshots:
            with design.repo.object_reader() as reader:
                self.snapshots[key] = _Snapshot(design.repo, reader, commit, module=False)
        return self.snapshots[key]

    def module_snapshot(self, design: Design, commit: str) -> _Snapshot | None:
        """`design` at `commit` read as a module earlier in the walk, if it was."""
        found = self.snapshots.get((design.pk, commit))
        return found if found is not None and found.module else None

    def on_the_way(self, design: Design) -> bool:
        return any(design_id == design.pk for design_id, _ in self.stack)

    def names(self, design: Design) -> str:
        return " → ".join([*(name for _, name in self.stack), design.full_name])


def _problem(message: str, *, module_design_id: int | None = None) -> dict[str, Any]:
    return {"message": message, "module_design_id": module_design_id}


class _Snapshot:
    """One commit of one design as the check reads it, all at once and through one git
    process (and `git config` for the .gitmodules of an assembly): its files listed, its
    .gitmodules and assembly.toml and, read as a module, its module.toml and its BOM
    (kept as its lines: a walk keeps its snapshots). A file over its limit reads as that
    limit + 1 bytes (so the format readers refuse it by its size) without being read."""

    def __init__(self, repo: Repository, reader: ObjectReader, commit: str, *, module: bool) -> None:
        self.module = module
        self.entries = {entry.path: entry for entry in reader.tree_entries(commit)}
        limits = {files.ASSEMBLY_FILE: files.MAX_FILE_BYTES, files.GITMODULES_FILE: files.MAX_FILE_BYTES}
        bom_path = self.find_bom() if module else None
        if module:
            limits[files.MODULE_FILE] = files.MAX_FILE_BYTES
            if bom_path is not None:
                limits[bom_path] = MAX_BOM_BYTES
        wanted = {path: (entry.sha, limit) for path, limit in limits.items() if (entry := self.blob(path))}
        by_sha: dict[str, int] = {}
        for sha, limit in wanted.values():  # two paths may hold the same blob
            by_sha[sha] = max(limit, by_sha.get(sha, 0))
        data = reader.read_blobs(by_sha)
        self.files: dict[str, bytes] = {}
        for path, (sha, limit) in wanted.items():
            found = data.get(sha)
            self.files[path] = found if found is not None and len(found) <= limit else b"\0" * (limit + 1)
        # Too large when git gives its size; a blob git lacks goes on to `git config`, which
        # says it cannot read it.
        gitmodules = wanted.get(files.GITMODULES_FILE)
        self.gitmodules_too_big = (
            gitmodules is not None
            and gitmodules[0] in data
            and len(self.files[files.GITMODULES_FILE]) > files.MAX_FILE_BYTES
        )
        # Read by git itself (`git config --blob`), whatever a hostile one holds: one more
        # git process, for an assembly only.
        self.gitmodules_listing = None
        if (
            gitmodules is not None
            and not self.gitmodules_too_big
            and (self.gitlinks() or self.blob(files.ASSEMBLY_FILE))
        ):
            self.gitmodules_listing = repo.config_blob_entries(gitmodules[0])
        self.bom, self.bom_problem = _module_bom(
            self.files.pop(bom_path, None) if bom_path else None, bom_path
        )

    def gitlinks(self) -> dict[str, str]:
        return {path: entry.sha for path, entry in self.entries.items() if entry.kind == "submodule"}

    def blob(self, path: str) -> TreeEntry | None:
        entry = self.entries.get(path)
        return entry if entry is not None and entry.kind == "blob" else None

    def find_bom(self) -> str | None:
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


def _module_designs(
    addresses: list[files.ModuleAddress], *, seen_by: User
) -> dict[files.ModuleAddress, Design]:
    """The designs of this hub the module URLs name — by owner and slug, or a pull mirror
    of another hub's URL standing in for it — among those the assembly's owner may see: a
    design they cannot see is "not found", so pinning cannot probe for private designs.
    Two queries at most, whatever the number of modules."""
    visible = designs_visible_to(seen_by).select_related(None).select_related("owner").prefetch_related(None)
    found: dict[files.ModuleAddress, Design] = {}
    local = [address for address in addresses if address.local]
    if local:
        # Owners × slugs, and the pairs picked out here: a simpler query than one per pair.
        candidates = visible.alias(lower_slug=Lower("slug")).filter(
            owner__username__in={address.owner for address in local},
            lower_slug__in={address.slug.lower() for address in local},
        )
        by_name = {(design.owner.username, design.slug.lower()): design for design in candidates}
        for address in local:
            if (design := by_name.get((address.owner, address.slug.lower()))) is not None:
                found[address] = design
    elsewhere = {
        address: [address.url, address.url.removesuffix(".git")] for address in addresses if not address.local
    }
    if elsewhere:
        mirrors = list(
            PullMirror.objects.filter(url__in=[url for urls in elsewhere.values() for url in urls])
            .filter(design__in=visible)
            .select_related("design__owner")
            .order_by("pk")
        )
        for address, urls in elsewhere.items():
            if (mirror := next((m for m in mirrors if m.url in urls), None)) is not None:
                found[address] = mirror.design
    return found


def _module_bom(raw: bytes | None, path: str | None) -> tuple[list[dict[str, Any]], str]:
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
    """The stored check of `design` at `commit`, computed if it is not there yet (and
    kept, by `assembly_check`, when the walk ends)."""
    key = (design.pk, commit)
    walk.look_up([key])
    if (stored := walk.checks[key]) is not None:
        return stored
    limited_before = walk.limited
    walk.limited = False
    is_assembly, problems, modules = _read_assembly(design, commit, walk)
    limited_here, walk.limited = walk.limited, walk.limited or limited_before
    check = AssemblyCheck(
        design=design,
        commit_sha=commit,
        is_assembly=is_assembly,
        problems=problems,
        modules=modules,
        checked_at=timezone.now(),
    )
    if not (limited_here and walk.stack):
        walk.checks[key] = check
        walk.read.append(check)
    return check


def _read_assembly(design: Design, commit: str, walk: _Walk) -> tuple[bool, list[dict], list[dict]]:
    snapshot = walk.snapshot(design, commit)
    links = snapshot.gitlinks()
    if not links and snapshot.blob(files.ASSEMBLY_FILE) is None:
        return False, [], []
    problems: list[dict] = []
    spec = files.AssemblySpec()
    raw = snapshot.files.get(files.ASSEMBLY_FILE)
    if raw is not None:
        spec, found = files.parse_assembly(raw)
        problems += [_problem(message) for message in found]
    gitmodules = snapshot.blob(files.GITMODULES_FILE)
    entries: dict[str, files.SubmoduleEntry] = {}
    if gitmodules is not None:
        too_big, listing = snapshot.gitmodules_too_big, snapshot.gitmodules_listing
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
    addresses = {
        path: files.resolve_module_url(
            entry.url, assembly_owner=design.owner.username, assembly_slug=design.slug, hub_roots=roots
        )
        for path, entry in entries.items()
        if path in links
    }
    designs = _module_designs(list(addresses.values()), seen_by=design.owner)
    named = {path: designs[address] for path, address in addresses.items() if address in designs}
    walk.look_up([(module.pk, links[path]) for path, module in named.items()])
    modules = []
    walk.stack.append((design.pk, design.full_name))
    # Those that are not a cycle are read, in this order.
    order = [
        (path, named[path]) for path in sorted(links) if path in named and not walk.on_the_way(named[path])
    ]
    try:
        with _PinReads(walk, [(path, module, links[path]) for path, module in order]) as reads:
            for path, pin in sorted(links.items()):
                module = _read_module(
                    path,
                    pin,
                    entries.get(path),
                    addresses.get(path),
                    named.get(path),
                    specs.get(path),
                    walk,
                    reads,
                    problems,
                )
                modules.append(module)
    finally:
        walk.stack.pop()
    _check_interfaces(modules, problems)
    return True, problems, modules


def _read_pin(repo: Repository, pin: str, known: _Snapshot | None) -> tuple[list[Tag], _Snapshot | None]:
    """The module's releases and, when `pin` is in its history, the module at `pin`: one
    git process (three when the pin is not a release). Git only, no database: it runs in
    a thread of `_PinReads`."""
    with repo.object_reader() as reader:
        tags = reader.tags()
        try:
            reachable = any(tag.target == pin for tag in tags) or repo.is_reachable(pin)
        except GitError:
            reachable = False
        if not reachable:
            return tags, None
        return tags, known or _Snapshot(repo, reader, pin, module=True)


class _PinReads:
    """The modules of one assembly read from git in a few threads, ahead of their turn:
    git answers for some while the hub works on the others (each thread runs one git
    process at a time). Reads not yet started when the assembly fails are not started."""

    THREADS = 3

    def __init__(self, walk: _Walk, pins: list[tuple[str, Design, str]]) -> None:
        self.pool = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="assembly-read")
        self.reads = {
            path: self.pool.submit(_read_pin, module.repo, pin, walk.module_snapshot(module, pin))
            for path, module, pin in pins
        }

    def __enter__(self) -> _PinReads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(cancel_futures=True)

    def result(self, path: str) -> tuple[list[Tag], _Snapshot | None]:
        return self.reads[path].result()


def _read_module(
    path: str,
    pin: str,
    entry: files.SubmoduleEntry | None,
    address: files.ModuleAddress | None,
    found: Design | None,
    spec: files.ModuleSpec | None,
    walk: _Walk,
    reads: _PinReads,
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
    if entry is None or address is None:
        problems.append(
            _problem(f"{path}: a submodule with no entry in .gitmodules, so nobody can clone it.")
        )
        return module
    if found is None:
        if address.local:
            problems.append(_problem(f"{path}: module {address.owner}/{address.slug} not found on this hub."))
        else:
            module["remote"] = True  # another hub's, with no mirror here: pinned, not read
        return module
    module.update(design_id=found.pk, name=found.full_name, licence=found.licence)
    if walk.on_the_way(found):
        problems.append(
            _problem(f"{path}: a cycle of assemblies: {walk.names(found)}.", module_design_id=found.pk)
        )
        return module
    tags, snapshot = reads.result(path)
    if snapshot is None:
        problems.append(
            _problem(
                f"{path}: commit {pin[:10]} is not in the history of {found.full_name}.",
                module_design_id=found.pk,
            )
        )
        return module
    walk.snapshots[(found.pk, pin)] = snapshot
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
    manifest_raw = snapshot.files.get(files.MODULE_FILE)
    if manifest_raw is not None:
        manifest, found_problems = files.parse_module(manifest_raw)
        problems += [_problem(f"{path}: {message}", module_design_id=found.pk) for message in found_problems]
        module["provides"] = [
            {"name": i.name, "description": i.description, "files": list(i.files)} for i in manifest.provides
        ]
        module["needs"] = [
            {"name": i.name, "description": i.description, "files": list(i.files)} for i in manifest.needs
        ]
    module["bom"], module["bom_problem"] = [dict(line) for line in snapshot.bom], snapshot.bom_problem
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
    walk = _Walk(stack=[])
    check = _check_commit(design, commit, walk)
    if walk.read:
        # One statement for the assembly and every nested check read on the way; another
        # process that read the same commit meanwhile found the same.
        AssemblyCheck.objects.bulk_create(
            walk.read,
            update_conflicts=True,
            unique_fields=["design", "commit_sha"],
            update_fields=["is_assembly", "problems", "modules", "checked_at"],
        )
    return check


def assembly_check_stored(design: Design, *, commit: str) -> AssemblyCheck | None:
    """The stored check of `commit`, or None after queueing its read: pages and the API
    never read a dozen repositories while someone waits."""
    check = AssemblyCheck.objects.filter(design=design, commit_sha=commit).first()
    if check is None:
        enqueue("designs.tasks.assembly_check_commit", design.pk, commit)
        # Queued work runs at once in tests and when nothing else is queued before it.
        check = AssemblyCheck.objects.filter(design=design, commit_sha=commit).first()
    return check


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
    if head is None or not (design.repo.gitlinks(head) or design.repo.entry(head, files.ASSEMBLY_FILE)):
        # Most designs are no assembly: git says so, and the database is left alone
        # (this runs after every push of every design).
        if ModuleUse.objects.filter(assembly_id=design.pk).exists():
            ModuleUse.objects.filter(assembly_id=design.pk).delete()
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
    if not ModuleUse.objects.filter(module_id=module.pk).exists():
        return 0
    uses = ModuleUse.objects.filter(module=module).select_related("assembly__owner")
    assemblies = {use.assembly_id: use.assembly for use in uses}
    for assembly in assemblies.values():
        head = assembly.repo.branch_head(assembly.default_branch)
        if head:
            # Only the head's check is read again: older commits keep what they found.
            AssemblyCheck.objects.filter(design=assembly, commit_sha=head).delete()
        assembly_refresh(design_id=assembly.pk)
    return len(assemblies)
