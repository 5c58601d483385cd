"""Open Know-How (OKH) manifests: what a design is, in the form OKH crawlers read.

A manifest (`okh.toml`, OKH 2.4) is built from what the hub knows of a design at one
commit: its row (name, licence, owner, fork, the OKH settings), its files (README, BOM,
images, mesh files as printable parts) and the stored mesh analysis (dimensions, mass).
Nothing is analysed here: a mesh not analysed yet simply has no figures.

An `okh.toml` committed at the design's root is read (at most MAX_OKH_BYTES), checked
field by field and preferred: its valid values win over the derived ones; a value of the
wrong type is left out, with a problem naming the field, and the derived value stays.
`okhv`, `repo`, `version` and `release` always come from the hub, which alone knows where
the design lives and which release a manifest describes. docs/portability.md has the rules.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

import tomli_w
from django.conf import settings
from django.urls import reverse

from designs.git import GitError, TreeEntry
from designs.meshes import MATERIAL_DENSITIES_G_CM3, is_mesh_path
from designs.models import Design, OkhDocumentationReadiness, OkhTechnologyReadiness
from designs.paths import is_image_path
from designs.selectors import (
    analyses_for_blobs,
    declared_units,
    design_readme_entry,
    design_resolve,
    design_tag,
    figures_at,
    thumbnail_path,
)

OKHV = "2.4"
OKH_FILE = "okh.toml"
MAX_OKH_BYTES = 64 * 1024
MAX_PARTS = 500
MAX_IMAGES = 20
# The hub cannot know what a part is printed in; its mass assumes the commonest filament
# unless the owner's okh.toml names a material the hub knows the density of.
ASSUMED_MATERIAL = "PLA"
FDM_MATERIALS = {"pla", "petg", "abs"}
PRINTING_PROCESSES = ("FDM", "SLA", "SLS", "MJF", "DMLS")
# Source files that sit beside an exported mesh under the same name (frame.scad → frame.stl).
CAD_EXTENSIONS = (".scad", ".fcstd", ".step", ".stp", ".f3d", ".sldprt", ".ipt", ".blend", ".3dm")
# The hub's alone: where the design lives, which release, which format.
HUB_FIELDS = ("okhv", "repo", "version", "release")
# A well-formed BCP 47 language tag (RFC 5646 `langtag` or private use), case-insensitive.
LANGUAGE_TAG = re.compile(
    r"^(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})(?:-[a-z]{4})?(?:-(?:[a-z]{2}|\d{3}))?"
    r"(?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*(?:-[\da-wyz](?:-[a-z\d]{2,8})+)*(?:-x(?:-[a-z\d]{1,8})+)?$"
    r"|^x(?:-[a-z\d]{1,8})+$",
    re.IGNORECASE,
)
SPDX_ID = re.compile(r"^(?:LicenseRef-|DocumentRef-[\w.-]+:LicenseRef-)?[A-Za-z0-9][A-Za-z0-9.-]*\+?$")


def valid_language_tag(text: str) -> bool:
    return len(text) <= 35 and LANGUAGE_TAG.match(text) is not None


def valid_licence_expression(text: str) -> bool:
    """An SPDX licence expression's shape: ids (or LicenseRef-…) joined by AND, OR, WITH and
    brackets. Whether each id is on the SPDX list is the crawler's business."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    depth, want_operand = 0, True
    for token in tokens:
        if token == "(" and want_operand:
            depth += 1
        elif token == ")" and not want_operand and depth > 0:
            depth -= 1
        elif token in ("AND", "OR", "WITH") and not want_operand:
            want_operand = True
        elif want_operand and SPDX_ID.match(token) and token not in ("AND", "OR", "WITH"):
            want_operand = False
        else:
            return False
    return bool(tokens) and depth == 0 and not want_operand


# -- the owner's okh.toml: each field checked on its own -------------------------------------

Check = Callable[[str, Any], tuple[Any, list[str]]]


def _text(name: str, value: Any) -> tuple[Any, list[str]]:
    if not isinstance(value, str):
        return None, [f"{name}: must be a string"]
    if not value.strip():
        return None, [f"{name}: must not be empty"]
    return value, []


def _texts(name: str, value: Any) -> tuple[Any, list[str]]:
    """A string, or a list of strings (paths or URLs)."""
    if isinstance(value, str):
        return _text(name, value)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return value, []
    return None, [f"{name}: must be a string or a list of non-empty strings"]


def _choice(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> tuple[Any, list[str]]:
        if value in choices:
            return value, []
        return None, [f"{name}: must be one of {', '.join(choices)}"]

    return check


def _number(name: str, value: Any, unit: str) -> tuple[Any, list[str]]:
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )
    return (value, []) if ok else (None, [f"{name}: must be a number of {unit}"])


def _grams(name: str, value: Any) -> tuple[Any, list[str]]:
    return _number(name, value, "grams")


def _licence(name: str, value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, str) and valid_licence_expression(value):
        return value, []
    return None, [f"{name}: must be an SPDX licence expression, e.g. CERN-OHL-S-2.0 or LicenseRef-Mine"]


def _language(name: str, value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, str) and valid_language_tag(value):
        return value, []
    return None, [f"{name}: must be a BCP 47 language tag, e.g. en or en-GB"]


def _dimensions(name: str, value: Any) -> tuple[Any, list[str]]:
    if not isinstance(value, dict):
        return None, [f"{name}: must be a table with width, depth and height in millimetres"]
    problems = [
        f"{name}.{_key(k)}: not a dimension (width, depth, height); left out"
        for k in value
        if k not in DIMENSIONS
    ]
    good = True
    for axis in DIMENSIONS:
        if axis not in value:
            problems.append(f"{name}.{axis}: missing (OKH needs all three, in millimetres)")
            good = False
        else:
            number, number_problems = _number(f"{name}.{axis}", value[axis], "millimetres")
            problems += number_problems
            good = good and number is not None
    return ({axis: value[axis] for axis in DIMENSIONS} if good else None), problems


def _tables(fields: dict[str, Check], required: str) -> Check:
    """A list of tables (`[[part]]`), each checked field by field; an entry that lacks
    `required` or has a wrong value is left out whole (keys it should not have, only they)."""

    def check(name: str, value: Any) -> tuple[Any, list[str]]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            return None, [f"{name}: must be a list of tables ([[{name}]])"]
        kept, problems = [], []
        for number, item in enumerate(value, start=1):
            where = f"{name}[{number}]"
            cleaned, item_problems = _table(where, item, fields)
            problems += item_problems
            if required not in item:
                problems.append(f"{where}.{required}: required")
            if required in cleaned and len(cleaned) == len([k for k in item if k in fields]):
                kept.append(cleaned)
            else:
                problems.append(f"{where}: left out")
        return kept, problems

    return check


def _table(name: str, value: dict, fields: dict[str, Check]) -> tuple[dict, list[str]]:
    """The keys of `value` that `fields` knows and that pass their check, and the problems."""
    cleaned: dict[str, Any] = {}
    problems: list[str] = []
    for key, item in value.items():
        check = fields.get(key)
        if check is None:
            problems.append(f"{name}.{_key(key)}: not an OKH {OKHV} field here; left out")
            continue
        good, item_problems = check(f"{name}.{key}", item)
        problems += item_problems
        if good is not None:
            cleaned[key] = good
    return cleaned, problems


def _rdf(name: str, value: Any) -> tuple[Any, list[str]]:
    if not isinstance(value, dict):
        return None, [f"{name}: must be a table with a namespace"]
    cleaned, problems = _table(name, value, {"namespace": _text, "prefix": _text})
    if "namespace" not in cleaned:
        return None, [*problems, f"{name}.namespace: required"]
    return cleaned, problems


def _strings(name: str, value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value, []
    return None, [f"{name}: must be a list of strings"]


DIMENSIONS = ("width", "depth", "height")

FIELDS: dict[str, Check] = {
    "okhv": _text,
    "name": _text,
    "repo": _text,
    "version": _text,
    "license": _licence,
    "licensor": _texts,
    "function": _text,
    "release": _text,
    "fork-of": _text,
    "organization": _texts,
    "readme": _texts,
    "contribution-guide": _texts,
    "documentation-language": _language,
    "technology-readiness-level": _choice(tuple(OkhTechnologyReadiness.values)),
    "documentation-readiness-level": _choice(tuple(OkhDocumentationReadiness.values)),
    "attestation": _texts,
    "publication": _texts,
    "standard-compliance": _texts,
    "cpc-patent-class": _texts,
    "tsdc": _texts,
    "bom": _texts,
    "manufacturing-instructions": _texts,
    "user-manual": _texts,
    "source": _texts,
    "mass": _grams,
    "outer-dimensions": _dimensions,
    "rdf": _rdf,
    "image": _tables(
        {"location": _text, "depicts": _text, "slots": _strings, "tags": _strings}, required="location"
    ),
    "part": _tables(
        {
            "name": _text,
            "source": _texts,
            "export": _texts,
            "tsdc": _texts,
            "mass": _grams,
            "image": _texts,
            "material": _text,
            "printing-process": _choice(PRINTING_PROCESSES),
            "outer-dimensions": _dimensions,
        },
        required="name",
    ),
    "software": _tables({"release": _text, "installation-guide": _texts}, required="release"),
}


def _key(key: str) -> str:
    """A key as TOML would write it: a problem naming it goes into a comment line."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key) else repr(key[:64])


def okh_parse(data: bytes) -> tuple[dict[str, Any], list[str]]:
    """The valid fields of a committed okh.toml and a problem per field that is not.

    A file too large, not UTF-8 or not TOML gives no fields and one problem saying why.
    """
    if len(data) > MAX_OKH_BYTES:
        return {}, [
            f"{OKH_FILE}: {len(data):,} bytes, more than the {MAX_OKH_BYTES // 1024} KiB the hub reads"
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {}, [f"{OKH_FILE}: not UTF-8 text"]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{OKH_FILE}: not valid TOML: {exc}"]
    except RecursionError:
        # tomllib reads nested arrays and inline tables recursively.
        return {}, [f"{OKH_FILE}: nested too deeply to read"]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        check = FIELDS.get(key)
        if check is None:
            problems.append(f"{_key(key)}: not an OKH {OKHV} field; left out")
            continue
        good, field_problems = check(key, value)
        problems += field_problems
        if good is not None:
            values[key] = good
    return values, problems


def okh_committed(design: Design, *, sha: str) -> tuple[dict[str, Any], list[str]] | None:
    """The owner's okh.toml at `sha` (parsed, checked), or None when there is none."""
    entry = design.repo.entry(sha, OKH_FILE)
    if entry is None or entry.kind != "blob":
        return None
    if (entry.size or 0) > MAX_OKH_BYTES:
        return {}, [
            f"{OKH_FILE}: {entry.size:,} bytes, more than the {MAX_OKH_BYTES // 1024} KiB the hub reads"
        ]
    return okh_parse(design.repo.read_blob(entry.sha))


def okh_problems(design: Design) -> list[str] | None:
    """What is wrong with the okh.toml at the default branch's head: None if there is no
    such file (or no commit), [] if it is fine."""
    sha = design.repo.branch_head(design.default_branch)
    if sha is None:
        return None
    committed = okh_committed(design, sha=sha)
    return None if committed is None else committed[1]


# -- addresses ------------------------------------------------------------------------------


def hub_root(request=None) -> str:
    """The hub's address without a trailing slash: FABHUB_PUBLIC_URL, else the request's."""
    if settings.FABHUB_PUBLIC_URL:
        return settings.FABHUB_PUBLIC_URL.rstrip("/")
    return request.build_absolute_uri("/").rstrip("/") if request is not None else ""


def okh_url(design: Design, *, root: str, tag: str | None = None) -> str:
    """The manifest's address: the default branch's, or a release's."""
    args = [design.owner.username, design.slug]
    if tag is None:
        return root + reverse("design-okh", args=args)
    return root + reverse("design-release-okh", args=[*args, tag])


def okh_manifest_urls(*, root: str) -> list[str]:
    """Every public design's manifest address (default branch, then each release): the flat
    list OKH crawlers read. One query, and one git call per design (its refs)."""
    urls: list[str] = []
    designs = Design.objects.filter(visibility=Design.Visibility.PUBLIC).select_related("owner")
    for design in designs.order_by("owner__username", "slug"):
        try:
            refs = design.repo.ref_names(f"refs/heads/{design.default_branch}", "refs/tags/")
        except GitError:
            continue  # a repository missing on disk has no manifest to list
        if f"refs/heads/{design.default_branch}" not in refs:
            continue  # nothing committed yet: its manifest would be a 404
        urls.append(okh_url(design, root=root))
        tags = sorted(ref.removeprefix("refs/tags/") for ref in refs if ref.startswith("refs/tags/"))
        urls += [okh_url(design, root=root, tag=tag) for tag in tags]
    return urls


# -- the manifest ---------------------------------------------------------------------------


@dataclass
class Manifest:
    design: Design
    sha: str
    fields: dict[str, Any]
    # What was wrong with the committed okh.toml (empty if none, or if it was fine).
    problems: list[str] = field(default_factory=list)
    committed: bool = False


def okh_manifest(design: Design, *, root: str, tag: str | None = None) -> Manifest:
    """The manifest of `design` at its default branch's head, or at release `tag`
    (NotFound if the design is empty or has no such tag)."""
    if tag is None:
        sha = design_resolve(design, None)
        described = design.repo.describe(sha)
        # The nearest release and how far past it (`v1.0-3-g1a2b3c4d5e`); exactly the tag
        # when the head is a release; the short commit when there is no release yet.
        version = described or sha[:10]
        # Exactly a tag's name, not git's reading of `-g<hex>` as a commit.
        at_release = described is not None and f"refs/tags/{described}" in design.repo.ref_names(
            f"refs/tags/{described}"
        )
        release = described if at_release else None
    else:
        sha = design_tag(design, tag).target
        version = release = tag
    entries = design.repo.ls_tree(sha, recursive=True)
    fields = _derived(design, root=root, sha=sha, entries=entries, version=version, release=release)
    committed = okh_committed(design, sha=sha)
    if committed is None:
        return Manifest(design, sha, fields)
    values, problems = committed
    return Manifest(design, sha, _merged(fields, values), problems, committed=True)


def _derived(
    design: Design, *, root: str, sha: str, entries: list[TreeEntry], version: str, release: str | None
) -> dict[str, Any]:
    owner = design.owner
    args = [owner.username, design.slug]

    def raw(path: str) -> str:
        return f"{root}{reverse('design-raw', args=[*args, path])}?ref={sha}"

    designs_of_owner = f"{root}{reverse('design-list')}?owner={quote(owner.username)}"
    fields: dict[str, Any] = {
        "okhv": OKHV,
        "name": design.title or design.slug,
        "repo": root + reverse("design-detail", args=args),
        "version": version,
        "license": design.licence,
        "licensor": f"{owner.get_full_name() or owner.username} <{designs_of_owner}>",
        # OKH requires a function; the design's summary says what it is for until the owner
        # says better in the settings or in okh.toml.
        "function": design.okh_function or design.summary or design.title or design.slug,
    }
    if release is not None:
        fields["release"] = f"{root}{reverse('design-tags', args=args)}#{quote(release)}"
    upstream = design.forked_from
    if upstream is not None and upstream.visibility == Design.Visibility.PUBLIC:
        fields["fork-of"] = root + reverse("design-detail", args=[upstream.owner.username, upstream.slug])
    if design.okh_documentation_language:
        fields["documentation-language"] = design.okh_documentation_language
    if design.okh_technology_readiness:
        fields["technology-readiness-level"] = design.okh_technology_readiness
    if design.okh_documentation_readiness:
        fields["documentation-readiness-level"] = design.okh_documentation_readiness
    readme = design_readme_entry(design, sha=sha)
    if readme is not None:
        fields["readme"] = raw(readme.path)
    files = [e for e in entries if e.kind == "blob"]
    boms = sorted(
        (e.path for e in files if e.path.lower().endswith(".csv") and "bom" in e.name.lower()),
        key=lambda p: (p.count("/"), p.lower()),
    )
    if boms:
        fields["bom"] = raw(boms[0])
    images = sorted(
        (e.path for e in files if is_image_path(e.path)),
        key=lambda p: (p.count("/"), p.lower()),
    )
    if images:
        fields["image"] = [{"location": raw(path)} for path in images[:MAX_IMAGES]]
    parts = _parts(design, root=root, sha=sha, files=files, raw=raw)
    if parts:
        fields["part"] = parts
        fields.update(_totals(parts))
    return fields


def _parts(
    design: Design, *, root: str, sha: str, files: list[TreeEntry], raw: Callable[[str], str]
) -> list[dict]:
    """A `[[part]]` per mesh file: a 3D-printable export, with its figures if analysed."""
    meshes = [e for e in files if is_mesh_path(e.path)][:MAX_PARTS]
    if not meshes:
        return []
    analyses = analyses_for_blobs([e.sha for e in meshes])
    units = declared_units(design, sha=sha, paths=[e.path for e in meshes])
    sources: dict[str, list[str]] = {}
    for entry in files:
        stem, suffix = _stem(entry.path)
        if suffix in CAD_EXTENSIONS:
            sources.setdefault(stem, []).append(entry.path)
    parts = []
    for entry in meshes:
        stem, _ = _stem(entry.path)
        part: dict[str, Any] = {"name": stem, "tsdc": "3DP", "export": [raw(entry.path)]}
        if stem in sources:
            part["source"] = [raw(path) for path in sources[stem]]
        row = analyses.get(entry.sha)
        figures = figures_at(row.figures, units.get(entry.path)) if row is not None and row.figures else None
        if figures is not None:
            part["_figures"] = figures
            width, depth, height = (round(float(v), 2) for v in figures["size"])
            part["outer-dimensions"] = {"width": width, "depth": depth, "height": height}
            mass = _mass(figures, ASSUMED_MATERIAL)
            if mass is not None:
                part["mass"] = mass
        if thumbnail_path(entry.sha).exists():
            part["image"] = root + reverse(
                "design-thumbnail", args=[design.owner.username, design.slug, entry.sha]
            )
        part["_path"] = entry.path
        parts.append(part)
    return parts


def _stem(path: str) -> tuple[str, str]:
    pure = PurePosixPath(path)
    return str(pure.with_suffix("")), pure.suffix.lower()


def _mass(figures: dict, material: str) -> float | None:
    """Grams of `material` in a closed mesh; None when the mesh has no reliable volume or
    the hub does not know the material's density."""
    densities = {name.lower(): density for name, density in MATERIAL_DENSITIES_G_CM3.items()}
    density = densities.get(material.strip().lower())
    if density is None or not figures.get("mass_reliable"):
        return None
    return round(abs(float(figures["volume_mm3"])) / 1000.0 * density, 1)


def _totals(parts: list[dict]) -> dict[str, Any]:
    """The design's mass (every part's, summed) and outer dimensions (the box around every
    part as placed in its file: parts exported from one assembly keep its frame), given
    only when every part has them."""
    totals: dict[str, Any] = {}
    if all("mass" in part for part in parts):
        totals["mass"] = round(sum(part["mass"] for part in parts), 1)
    figures = [part.get("_figures") for part in parts]
    if all(f is not None for f in figures):
        low = [min(f["bbox_min"][axis] for f in figures if f) for axis in range(3)]
        high = [max(f["bbox_max"][axis] for f in figures if f) for axis in range(3)]
        width, depth, height = (round(float(h - lo), 2) for lo, h in zip(low, high, strict=True))
        totals["outer-dimensions"] = {"width": width, "depth": depth, "height": height}
    return totals


def _merged(derived: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """The owner's values over the derived ones, field by field; parts by the file they name."""
    fields = dict(derived)
    for key, value in owner.items():
        if key in HUB_FIELDS:
            continue
        if key == "part":
            fields["part"] = _merged_parts(derived.get("part", []), value)
            if "mass" not in owner:
                fields.pop("mass", None)
                fields.update({k: v for k, v in _totals(fields["part"]).items() if k == "mass"})
        else:
            fields[key] = value
    return fields


def _merged_parts(derived: list[dict], owner: list[dict]) -> list[dict]:
    """Each owner's part over the derived part of the same name or file (a `source` or
    `export` path); derived parts the owner does not mention stay."""
    merged = [dict(part) for part in derived]
    extra = []
    for part in owner:
        named = {part["name"]} | set(_as_list(part.get("source"))) | set(_as_list(part.get("export")))
        match = next((m for m in merged if m["name"] in named or m["_path"] in named), None)
        if match is None:
            extra.append(dict(part))
            continue
        match.update(part)
        material = part.get("material")
        if material and "mass" not in part and match.get("_figures"):
            mass = _mass(match["_figures"], material)
            if mass is None:
                match.pop("mass", None)  # its density is not known: no PLA guess either
            else:
                match["mass"] = mass
        if material and "printing-process" not in part and material.strip().lower() in FDM_MATERIALS:
            match["printing-process"] = "FDM"
    return merged + extra


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def okh_render(manifest: Manifest) -> str:
    """The manifest as TOML, the committed file's problems as comments on top."""
    fields = dict(manifest.fields)
    if "part" in fields:
        fields["part"] = [{k: v for k, v in part.items() if not k.startswith("_")} for part in fields["part"]]
    lines = [f"# Open Know-How manifest of {manifest.design.full_name} at {manifest.sha}, written by fabhub."]
    if manifest.problems:
        lines.append(f"# The design's {OKH_FILE} has problems; the hub left these values out:")
        lines += [f"#   - {_comment(problem)}" for problem in manifest.problems]
    elif manifest.committed:
        lines.append(f"# Values from the design's {OKH_FILE} take precedence over the hub's.")
    return "\n".join(lines) + "\n\n" + tomli_w.dumps(fields)


def _comment(text: str) -> str:
    # A problem quotes the owner's file: no line break may end the comment early.
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", text)
