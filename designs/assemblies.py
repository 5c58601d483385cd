"""The files that make a design an assembly of modules (docs/assemblies.md), read and
checked without touching the database or git: `.gitmodules` (where each module comes
from), `assembly.toml` (what git does not say: how many, where, which files, which
interfaces, which material) and a module's own `module.toml` (the interfaces it provides
and needs). The gitlinks in the tree are the pins; these files only describe them.

Everything here is bounded: a file is read only up to MAX_FILE_BYTES, a list only up to
MAX_MODULES entries, every number must be finite, every path plain. Problems are
collected as sentences naming the field, never raised half-way.
"""

from __future__ import annotations

import math
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ASSEMBLY_FILE = "assembly.toml"
MODULE_FILE = "module.toml"
GITMODULES_FILE = ".gitmodules"
MAX_FILE_BYTES = 64 * 1024
MAX_MODULES = 200
MAX_DEPTH = 6
MAX_NAME_CHARS = 200
MAX_COORDINATE_MM = 1_000_000.0
_INTERFACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


# -- licences -----------------------------------------------------------------------------

# How strongly each licence binds what contains it: a module under a reciprocal licence
# makes the assembly (a derived work) carry the same terms. The table is deliberately
# small and says only what its rows are sure of (docs/assemblies.md).
RECIPROCITY = {
    "CERN-OHL-S-2.0": "strong",
    "GPL-3.0-or-later": "strong",
    "CC-BY-SA-4.0": "share-alike",
    "CERN-OHL-W-2.0": "weak",
    "TAPR-OHL-1.0": "weak",
    "CERN-OHL-P-2.0": "permissive",
    "CC-BY-4.0": "permissive",
    "MIT": "permissive",
    "Apache-2.0": "permissive",
    "CC0-1.0": "permissive",
}


def licence_warning(assembly_licence: str, module_licence: str, module: str) -> str | None:
    """A sentence when `module`'s licence asks more of the assembly than its own
    licence gives; None when the pair is fine or the table does not know."""
    outer, inner = RECIPROCITY.get(assembly_licence), RECIPROCITY.get(module_licence)
    if outer is None or inner is None or assembly_licence == module_licence:
        return None
    if inner == "strong":
        return (
            f"{module} is {module_licence}, strongly reciprocal: the assembly, a work based on it, "
            f"must be offered under {module_licence} too, not {assembly_licence}."
        )
    if inner == "share-alike" and outer != "share-alike":
        return f"{module} is {module_licence}: adaptations must be shared alike, which {assembly_licence} does not promise."
    if inner == "share-alike" and outer == "share-alike":
        return None
    if {inner, outer} == {"share-alike", "strong"}:
        return f"{module} is {module_licence} and the assembly {assembly_licence}: the two reciprocal licences conflict."
    return None


# -- .gitmodules --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmoduleEntry:
    name: str
    path: str
    url: str


def parse_gitmodules(config_list: str) -> tuple[list[SubmoduleEntry], list[str]]:
    """The entries of `.gitmodules`, from `git config --blob … --list -z` output (git reads
    its own format; we only sort the keys)."""
    fields: dict[str, dict[str, str]] = {}
    for item in config_list.split("\0"):
        key, _, value = item.partition("\n")
        if not key.startswith("submodule."):
            continue
        name, _, attribute = key[len("submodule.") :].rpartition(".")
        fields.setdefault(name, {})[attribute] = value
    entries, problems = [], []
    for name, values in fields.items():
        if "path" not in values or "url" not in values:
            problems.append(f".gitmodules: submodule {name!r} needs both a path and a url.")
            continue
        entries.append(SubmoduleEntry(name=name, path=values["path"], url=values["url"]))
    return entries, problems


@dataclass(frozen=True)
class ModuleAddress:
    """Where a module's URL points: a design of this hub (`owner`/`slug`), or elsewhere."""

    url: str
    owner: str = ""
    slug: str = ""

    @property
    def local(self) -> bool:
        return bool(self.owner)


def resolve_module_url(
    url: str, *, assembly_owner: str, assembly_slug: str, hub_roots: list[str]
) -> ModuleAddress:
    """A relative URL is resolved as git resolves it against the assembly's own clone URL
    (`/<owner>/<slug>.git`): `../../linus/suspension.git` is linus/suspension on this hub.
    An absolute URL on one of `hub_roots` is local too; any other is another hub's."""
    if url.startswith(("./", "../")):
        # git strips one component of the superproject's URL for each leading "../": the
        # same as joining onto the URL taken as a folder.
        return _local_address(
            url, posixpath.normpath(posixpath.join(f"/{assembly_owner}/{assembly_slug}.git", url))
        )
    for root in hub_roots:
        root = root.rstrip("/")
        if root and url.startswith(root + "/"):
            return _local_address(url, url[len(root) :])
    return ModuleAddress(url=url)


def _local_address(url: str, path: str) -> ModuleAddress:
    """`/<owner>/<slug>.git` or `/<owner>/<slug>` (the hub serves git at both)."""
    parts = path.strip("/").split("/")
    if len(parts) != 2 or not parts[0] or parts[1] in ("", ".git"):
        return ModuleAddress(url=url)
    return ModuleAddress(url=url, owner=parts[0], slug=parts[1].removesuffix(".git"))


def module_clone_path(*, assembly_owner: str, module_owner: str, module_slug: str) -> str:
    """The relative URL an assembly of this hub names a module of this hub by."""
    return f"../../{module_owner}/{module_slug}.git"


# -- assembly.toml -------------------------------------------------------------------------


@dataclass
class ModuleSpec:
    """One [[module]] of assembly.toml."""

    path: str
    release: str = ""
    quantity: int = 1
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    files: list[str] | None = None  # None: every mesh at the module's pin
    attaches: list[str] = field(default_factory=list)
    materials: dict[str, str] = field(default_factory=dict)


@dataclass
class AssemblySpec:
    name: str = ""
    licence: str = ""
    modules: list[ModuleSpec] = field(default_factory=list)


def read_toml(raw: bytes, *, file: str) -> tuple[dict[str, Any] | None, list[str]]:
    if len(raw) > MAX_FILE_BYTES:
        return None, [f"{file}: larger than {MAX_FILE_BYTES // 1024} KiB; the hub does not read it."]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, [f"{file}: not UTF-8 text."]
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{file}: not valid TOML ({exc})."]
    except RecursionError:
        return None, [f"{file}: nested too deeply."]


def _plain_path(value: Any) -> bool:
    if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value or "\\" in value:
        return False
    if value.startswith("/") or value != posixpath.normpath(value):
        return False
    return not any(part in ("..", ".git") for part in value.split("/"))


def _triple(value: Any, *, what: str, bound: float, problems: list[str]) -> tuple[float, float, float] | None:
    if not isinstance(value, list) or len(value) != 3:
        problems.append(f"{what}: must be three numbers [x, y, z].")
        return None
    numbers = []
    for item in value:
        if (
            isinstance(item, bool)
            or not isinstance(item, int | float)
            or not math.isfinite(item)
            or abs(item) > bound
        ):
            problems.append(f"{what}: each number must be finite and within ±{bound:g}.")
            return None
        numbers.append(float(item))
    return (numbers[0], numbers[1], numbers[2])


def _name_list(
    value: Any, *, what: str, problems: list[str], pattern: re.Pattern | None = None
) -> list[str] | None:
    if not isinstance(value, list) or len(value) > MAX_MODULES:
        problems.append(f"{what}: must be a list of at most {MAX_MODULES} names.")
        return None
    names = []
    for item in value:
        if not isinstance(item, str) or not item or len(item) > MAX_NAME_CHARS:
            problems.append(f"{what}: every item must be a name of 1–{MAX_NAME_CHARS} characters.")
            return None
        if pattern is not None and not pattern.match(item):
            problems.append(
                f"{what}: {item[:40]!r} is not an interface name (letters, digits, '.', '-', '_')."
            )
            return None
        names.append(item)
    return names


def parse_assembly(raw: bytes) -> tuple[AssemblySpec, list[str]]:
    """assembly.toml as a spec and the problems found, one sentence per field."""
    data, problems = read_toml(raw, file=ASSEMBLY_FILE)
    spec = AssemblySpec()
    if data is None:
        return spec, problems
    for key in ("name", "licence"):
        value = data.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
            problems.append(f"{ASSEMBLY_FILE}: {key} must be a text of at most {MAX_NAME_CHARS} characters.")
        else:
            setattr(spec, key, value)
    modules = data.get("module", [])
    if not isinstance(modules, list) or not all(isinstance(item, dict) for item in modules):
        problems.append(f"{ASSEMBLY_FILE}: [[module]] must be a list of tables.")
        return spec, problems
    if len(modules) > MAX_MODULES:
        problems.append(f"{ASSEMBLY_FILE}: at most {MAX_MODULES} modules; this has {len(modules)}.")
        return spec, problems
    seen: set[str] = set()
    for number, item in enumerate(modules, start=1):
        where = f"{ASSEMBLY_FILE}: module {number}"
        unknown = set(item) - {
            "path",
            "release",
            "quantity",
            "position",
            "rotation",
            "files",
            "attaches",
            "materials",
        }
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}.")
        path = item.get("path")
        if not _plain_path(path):
            problems.append(f"{where}: path must be the module's folder in this design, plain and relative.")
            continue
        assert isinstance(path, str)
        where = f"{ASSEMBLY_FILE}: module {path!r}"
        if path in seen:
            problems.append(f"{where}: listed twice.")
            continue
        seen.add(path)
        module = ModuleSpec(path=path)
        release = item.get("release", "")
        if not isinstance(release, str) or len(release) > MAX_NAME_CHARS:
            problems.append(f"{where}: release must be a tag name.")
        else:
            module.release = release
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100_000:
            problems.append(f"{where}: quantity must be a whole number from 1 to 100000.")
        else:
            module.quantity = quantity
        if "position" in item:
            position = _triple(
                item["position"], what=f"{where}: position (mm)", bound=MAX_COORDINATE_MM, problems=problems
            )
            module.position = position or module.position
        if "rotation" in item:
            rotation = _triple(
                item["rotation"], what=f"{where}: rotation (degrees)", bound=3600.0, problems=problems
            )
            module.rotation = rotation or module.rotation
        if "files" in item:
            files = _name_list(item["files"], what=f"{where}: files", problems=problems)
            if files is not None and not all(_plain_path(name) for name in files):
                problems.append(f"{where}: files must be plain relative paths inside the module.")
            elif files is not None:
                module.files = files
        if "attaches" in item:
            module.attaches = (
                _name_list(
                    item["attaches"], what=f"{where}: attaches", problems=problems, pattern=_INTERFACE_NAME
                )
                or []
            )
        materials = item.get("materials", {})
        if not isinstance(materials, dict) or len(materials) > MAX_MODULES:
            problems.append(f"{where}: materials must be a table of file = material.")
        else:
            for name, material in materials.items():
                if not _plain_path(name) or not isinstance(material, str) or len(material) > 40:
                    problems.append(
                        f"{where}: materials: {str(name)[:40]!r} must name a file and a material."
                    )
                    break
                module.materials[name] = material
        spec.modules.append(module)
    return spec, problems


# -- module.toml -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    name: str
    description: str
    files: tuple[str, ...]


@dataclass
class ModuleManifest:
    provides: list[Interface] = field(default_factory=list)
    needs: list[Interface] = field(default_factory=list)

    def provided(self, name: str) -> Interface | None:
        return next((interface for interface in self.provides if interface.name == name), None)


def parse_module(raw: bytes) -> tuple[ModuleManifest, list[str]]:
    data, problems = read_toml(raw, file=MODULE_FILE)
    manifest = ModuleManifest()
    if data is None:
        return manifest, problems
    for section in ("provides", "needs"):
        items = data.get(section, [])
        if (
            not isinstance(items, list)
            or len(items) > MAX_MODULES
            or not all(isinstance(i, dict) for i in items)
        ):
            problems.append(f"{MODULE_FILE}: [[{section}]] must be a list of at most {MAX_MODULES} tables.")
            continue
        for number, item in enumerate(items, start=1):
            name, description, files = item.get("name"), item.get("description", ""), item.get("files", [])
            where = f"{MODULE_FILE}: {section} {number}"
            if not isinstance(name, str) or not _INTERFACE_NAME.match(name):
                problems.append(f"{where}: name must be an interface name (letters, digits, '.', '-', '_').")
                continue
            if not isinstance(description, str) or len(description) > 2000:
                problems.append(f"{where} ({name}): description must be a text of at most 2000 characters.")
                description = ""
            if not isinstance(files, list) or not all(_plain_path(f) for f in files) or len(files) > 100:
                problems.append(f"{where} ({name}): files must be a list of plain relative paths.")
                files = []
            getattr(manifest, section).append(
                Interface(name=name, description=description, files=tuple(files))
            )
    return manifest, problems


# -- placement ---------------------------------------------------------------------------------


def transform_matrix(
    position: tuple[float, float, float], rotation: tuple[float, float, float]
) -> list[float]:
    """The 4×4 column-major matrix (as WebGL takes it) that rotates about X, then Y, then Z
    (degrees) and then moves by `position` (mm)."""
    rx, ry, rz = (math.radians(angle) for angle in rotation)
    cx, sx, cy, sy, cz, sz = (
        math.cos(rx),
        math.sin(rx),
        math.cos(ry),
        math.sin(ry),
        math.cos(rz),
        math.sin(rz),
    )
    # R = Rz · Ry · Rx
    r = [
        [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
        [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
        [-sy, cy * sx, cy * cx],
    ]
    return [
        r[0][0], r[1][0], r[2][0], 0.0,
        r[0][1], r[1][1], r[2][1], 0.0,
        r[0][2], r[1][2], r[2][2], 0.0,
        position[0], position[1], position[2], 1.0,
    ]  # fmt: skip


def compose(outer: list[float], inner: list[float]) -> list[float]:
    """outer · inner, both column-major 4×4."""
    return [
        sum(outer[k * 4 + row] * inner[col * 4 + k] for k in range(4)) for col in range(4) for row in range(4)
    ]


def transformed_box(
    matrix: list[float], low: tuple[float, ...], high: tuple[float, ...]
) -> tuple[list[float], list[float]]:
    """The axis-aligned box around the eight corners of [low, high] placed by `matrix`."""
    corners = [(x, y, z) for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
    placed = [
        [
            matrix[0 + row] * x + matrix[4 + row] * y + matrix[8 + row] * z + matrix[12 + row]
            for row in range(3)
        ]
        for x, y, z in corners
    ]
    return [min(p[i] for p in placed) for i in range(3)], [max(p[i] for p in placed) for i in range(3)]


def hub_roots_of(public_url: str) -> list[str]:
    """The addresses by which module URLs may name this hub absolutely."""
    roots = []
    if public_url:
        parts = urlsplit(public_url)
        roots.append(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}")
    return roots
