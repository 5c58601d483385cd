"""The only module that touches trimesh: reads mesh files and measures them.

A pure adapter: bytes in, plain dataclasses and dicts out, no Django, no database.
The worker that calls it runs each file in a subprocess with time and memory limits;
this module adds the limits that depend on the file's content (triangle counts, ZIP
sizes) and checks them *before* allocating, so a hostile file fails fast with a
`MeshError` whose `reason` a person can act on.

Figures are computed by one vectorised code path for every format. Binary STL, the
common case, is parsed straight from the bytes with numpy; the other formats are read
through trimesh (with processing off) and handed to the same code as triangles.
Corners are merged by *exact* equality of their coordinates, which is what STL needs
and what makes the figures reproducible from the bytes alone.
"""

from __future__ import annotations

import io
import math
import re
import struct
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath

import numpy as np

MESH_EXTENSIONS = (".stl", ".3mf", ".obj", ".ply", ".off", ".glb")

# Bump when a figure's definition changes, so stored figures can be recomputed.
FIGURES_VERSION = 1

MATERIAL_DENSITIES_G_CM3 = {"PLA": 1.24, "PETG": 1.27, "ABS": 1.04, "resin": 1.15}

# Canonical unit names and their length in millimetres.
UNITS_MM = {"micron": 0.001, "mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "foot": 304.8}
_UNIT_ALIASES = {
    "micron": "micron",
    "microns": "micron",
    "micrometer": "micron",
    "micrometre": "micron",
    "um": "micron",
    "µm": "micron",
    "mm": "mm",
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "in": "inch",
    "inch": "inch",
    "inches": "inch",
    "ft": "foot",
    "foot": "foot",
    "feet": "foot",
}

_FORMAT_NAMES = {
    ".stl": "an STL file",
    ".3mf": "a 3MF file",
    ".obj": "an OBJ file",
    ".ply": "a PLY file",
    ".off": "an OFF file",
    ".glb": "a glTF binary (.glb) file",
}

_FOREIGN_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program"),
    (b"glTF", "a glTF binary (.glb)"),
)

# Work is done in slices of this many triangles to keep temporary arrays small.
_CHUNK = 1 << 18
# The oriented box is searched on at most this many hull points (see _oriented_box).
_OBB_CANDIDATES = 10_000
_OBB_HULL_POINTS = 1_000
# A ZIP member smaller than this cannot be a bomb, whatever its ratio.
_RATIO_FLOOR_BYTES = 1 << 20


class MeshError(Exception):
    """A mesh file that cannot be read or measured.

    `reason` is a sentence for the person who uploaded the file. Retrying never helps:
    the problem is in the bytes, so `retryable` is always False.
    """

    retryable = False

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_triangles: int = 5_000_000
    max_bytes: int = 512 * 1024**2
    max_uncompressed_bytes: int = 1024**3  # 3MF: sum of the parts that are read
    max_compression_ratio: float = 200.0  # 3MF: per part larger than 1 MiB
    max_archive_members: int = 10_000  # 3MF


@dataclass
class MeshFigures:
    """What a mesh file measures, in millimetres whatever the file's own unit."""

    format: str  # "stl-binary", "stl-ascii", "3mf", "obj", "ply", "off", "glb"
    units: str  # the unit the file's numbers were read in: a key of UNITS_MM
    # "declared" (3MF), "format" (glTF: metres, turned Y-up to Z-up), "assumed" (mm), "given"
    units_source: str
    triangles: int
    vertices: int  # distinct corner positions
    bodies: int  # groups of triangles connected through shared corners
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]
    size: tuple[float, float, float]  # axis-aligned extents
    obb_size: tuple[float, float, float]  # oriented box extents, largest first
    obb_approximate: bool  # True when the box was searched on a sample of the hull
    volume_mm3: float  # signed: negative when the normals point inwards
    area_mm2: float
    watertight: bool  # every edge is shared by exactly two triangles
    winding_consistent: bool  # every edge shared by two triangles is walked both ways
    degenerate_faces: int  # zero area: corners that coincide or lie exactly on a line
    duplicate_faces: int  # extra copies of a triangle with the same three corners
    non_manifold_edges: int  # edges shared by more than two triangles
    boundary_edges: int  # edges used by one triangle only: holes
    mass_g: dict[str, float] = field(default_factory=dict)  # material -> grams
    mass_reliable: bool = False  # only a closed, consistently wound mesh has a volume

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("bbox_min", "bbox_max", "size", "obb_size"):
            data[name] = list(data[name])
        data["version"] = FIGURES_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MeshFigures:
        """Rebuild figures stored by `to_dict`.

        Raises ValueError for figures of another FIGURES_VERSION: recompute those.
        """
        if data.get("version") != FIGURES_VERSION:
            raise ValueError(f"figures of version {data.get('version')!r}, expected {FIGURES_VERSION}")
        values = {f.name: data[f.name] for f in fields(cls)}
        for name in ("bbox_min", "bbox_max", "size", "obb_size"):
            values[name] = tuple(float(x) for x in values[name])
        values["mass_g"] = dict(values["mass_g"])
        return cls(**values)


def is_mesh_path(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in MESH_EXTENSIONS


def figures_in_units(figures: dict, units: str) -> dict:
    """Figures re-scaled as if the file's coordinates were in `units` (e.g. an STL drawn in
    inches, declared with the `fabhub-units` git attribute). Lengths scale by the factor,
    areas by its square, volumes and masses by its cube."""
    units = canonical_units(units)
    factor = UNITS_MM[units] / UNITS_MM[figures["units"]]
    if factor == 1.0:
        return figures
    scaled = dict(figures)
    for key in ("bbox_min", "bbox_max", "size", "obb_size"):
        scaled[key] = [value * factor for value in figures[key]]
    scaled["area_mm2"] = figures["area_mm2"] * factor**2
    scaled["volume_mm3"] = figures["volume_mm3"] * factor**3
    scaled["mass_g"] = {name: grams * factor**3 for name, grams in figures["mass_g"].items()}
    scaled["units"], scaled["units_source"] = units, "given"
    return scaled


def fits(obb_size: Sequence[float], build_volume: Sequence[float]) -> bool:
    """Whether a part whose oriented box has these extents fits the build volume.

    Compares the sorted extents of the part's minimal oriented box with the sorted build
    volume: the standard check that the box fits once its axes are turned onto the
    machine's axes in some order. It is sufficient (a box that passes fits), not
    necessary: a long thin part that only fits diagonally is reported as not fitting.
    """
    part = sorted(float(x) for x in obb_size)
    room = sorted(float(x) for x in build_volume)
    if len(part) != 3 or len(room) != 3:
        raise ValueError("fits() needs three extents and three build-volume sizes")
    return all(p <= r for p, r in zip(part, room, strict=True))


def analyse(
    data: bytes, *, filename: str, units: str | None = None, limits: Limits = Limits()
) -> MeshFigures:
    """Measure a mesh file. `units` overrides the unit the file declares or implies.

    Volume and mass assume the triangles enclose one solid; overlapping bodies in one
    file count their shared space twice.
    """
    mesh = _read(data, filename=filename, units=units, limits=limits)
    return _figures(mesh)


def geometric_diff(
    old: bytes,
    new: bytes,
    *,
    old_name: str,
    new_name: str,
    samples: int = 20_000,
    time_budget_s: float = 5.0,
    limits: Limits = Limits(),
) -> dict:
    """How a part changed between two files, in millimetres.

    Distances are measured from points sampled evenly over each surface to the other
    surface (to its nearest sample, refined by the exact distance to nearby triangles
    while the time budget allows): `hausdorff_mm` is the largest, `mean_distance_mm`
    the mean over both directions. `regions` lists where the surface moved by more than
    `threshold_mm`: "removed" regions lie on the old surface, "added" ones on the new.

    When most of the surface moved, the exporter probably placed the part elsewhere: the
    old part is then turned and shifted onto the new one (rigid ICP from the 24 right-
    angle orientations), `aligned` is True, the distances and regions are measured after
    that move (in the new file's coordinates), and `as_placed_*` keep the raw distances.
    Only a move that at least halves the mean distance is kept.
    """
    started = time.perf_counter()
    before = _read(old, filename=old_name, units=None, limits=limits)
    after = _read(new, filename=new_name, units=None, limits=limits)
    old_c = before.corners_mm()
    new_c = after.corners_mm()
    old_m = _measure(old_c)
    new_m = _measure(new_c)
    result: dict = {
        "old": old_m,
        "new": new_m,
        "delta": {
            "triangles": new_m["triangles"] - old_m["triangles"],
            "volume_mm3": new_m["volume_mm3"] - old_m["volume_mm3"],
            "area_mm2": new_m["area_mm2"] - old_m["area_mm2"],
            "size": [b - a for a, b in zip(old_m["size"], new_m["size"], strict=True)],
        },
    }
    lo = np.minimum(np.array(old_m["bbox_min"]), np.array(new_m["bbox_min"]))
    hi = np.maximum(np.array(old_m["bbox_max"]), np.array(new_m["bbox_max"]))
    threshold = max(0.02, 1e-3 * float(np.linalg.norm(hi - lo)))
    samples = int(min(max(samples, 100), 200_000))
    if old == new or (old_c.shape == new_c.shape and np.array_equal(old_c, new_c)):
        result.update(
            hausdorff_mm=0.0,
            mean_distance_mm=0.0,
            old_to_new_max_mm=0.0,
            new_to_old_max_mm=0.0,
            threshold_mm=threshold,
            regions=[],
            samples=0,
            exact_refinement=True,
            identical=True,
            aligned=False,
        )
        return result

    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    old_pts, old_faces = _sample_surface(old_c, samples, rng)
    new_pts, new_faces = _sample_surface(new_c, samples, rng)
    new_tree = cKDTree(new_pts)
    # Sample-to-sample distances are only as fine as the sample spacing.
    spacing = math.sqrt(max(old_m["area_mm2"], new_m["area_mm2"]) / samples)
    rough_old = new_tree.query(old_pts)[0]
    rough_new = cKDTree(old_pts).query(new_pts)[0]
    moved_share = float(np.mean(np.concatenate([rough_old, rough_new]) > max(threshold, 2 * spacing)))
    aligned = False
    if moved_share > 0.5:
        rotation, shift = _align(old_pts, new_pts, new_tree, rng)
        turned = _turn(old_pts, rotation) + shift
        turned_old = new_tree.query(turned)[0]
        turned_new = cKDTree(turned).query(new_pts)[0]
        as_placed = np.concatenate([rough_old, rough_new])
        if np.concatenate([turned_old, turned_new]).mean() < 0.5 * as_placed.mean():
            aligned = True
            result.update(
                as_placed_hausdorff_mm=float(as_placed.max()),
                as_placed_mean_distance_mm=float(as_placed.mean()),
                alignment_rotation_deg=_rotation_angle(rotation),
                alignment_shift_mm=[float(x) for x in shift],
            )
            old_pts = turned
            old_c = _turn(old_c, rotation) + shift
            lo = np.minimum(old_pts.min(axis=0), new_pts.min(axis=0))
            hi = np.maximum(old_pts.max(axis=0), new_pts.max(axis=0))
    deadline = started + time_budget_s
    d_old, refined_old = _distances(old_pts, new_pts, new_faces, new_c, deadline)
    d_new, refined_new = _distances(new_pts, old_pts, old_faces, old_c, deadline)
    if not (refined_old and refined_new):
        threshold = max(threshold, spacing)
    regions = _moved_regions(old_pts, d_old, threshold, "removed", lo, hi)
    regions += _moved_regions(new_pts, d_new, threshold, "added", lo, hi)
    regions.sort(key=lambda r: -r["share"])
    result.update(
        hausdorff_mm=float(max(d_old.max(), d_new.max())),
        mean_distance_mm=float(np.concatenate([d_old, d_new]).mean()),
        old_to_new_max_mm=float(d_old.max()),
        new_to_old_max_mm=float(d_new.max()),
        threshold_mm=threshold,
        regions=regions[:8],
        samples=samples,
        exact_refinement=bool(refined_old and refined_new),
        identical=False,
        aligned=aligned,
    )
    return result


def render_thumbnail(data: bytes, *, filename: str, size: int = 256, limits: Limits = Limits()) -> bytes:
    """A PNG of the part seen from the front left and above, drawn on the CPU."""
    if not 16 <= size <= 2048:
        raise ValueError("thumbnail size must be between 16 and 2048 pixels")
    mesh = _read(data, filename=filename, units=None, limits=limits)
    return _png(_render(mesh.corners, size))


def viewer_triangles(
    data: bytes, *, filename: str, max_triangles: int = 400_000, limits: Limits = Limits()
) -> bytes:
    """The triangles for the browser's 3D view: float32 little-endian, 9 per triangle, mm.

    Meshes with more than `max_triangles` are simplified by vertex clustering (corners
    that fall in one cell of a grid become one corner), coarsening the grid until the
    count fits: the shape stays whole, with no holes from dropped triangles.
    """
    mesh = _read(data, filename=filename, units=None, limits=limits)
    corners = mesh.corners_mm()
    if len(corners) > max_triangles:
        corners = _simplify(corners, max_triangles)
    return np.ascontiguousarray(corners, dtype="<f4").tobytes()


# --- reading ---------------------------------------------------------------------------


@dataclass
class _Mesh:
    corners: np.ndarray  # (n, 3, 3) float32 or float64, finite, in the file's unit
    format: str
    units: str
    units_source: str

    @property
    def scale(self) -> float:
        return UNITS_MM[self.units]

    def corners_mm(self) -> np.ndarray:
        corners = np.asarray(self.corners, dtype=np.float64)
        return corners * self.scale if self.scale != 1.0 else corners


def _read(data: bytes, *, filename: str, units: str | None, limits: Limits) -> _Mesh:
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in MESH_EXTENSIONS:
        raise MeshError(
            f"'{filename}' is not a mesh file this hub reads (it reads {', '.join(MESH_EXTENSIONS)})"
        )
    given = canonical_units(units) if units is not None else None
    if len(data) == 0:
        raise MeshError("the file is empty")
    if len(data) > limits.max_bytes:
        raise MeshError(
            f"the file has {len(data):,} bytes, more than the {limits.max_bytes:,} this hub analyses"
        )
    if suffix == ".stl":
        corners, fmt = _read_stl(data, limits)
        declared, source = "mm", "assumed"
    else:
        corners, declared, source = _read_with_trimesh(data, suffix, limits)
        fmt = suffix[1:]
    if len(corners) == 0:
        raise MeshError("the file contains no triangles")
    if given is not None:
        declared, source = given, "given"
    return _Mesh(corners=corners, format=fmt, units=declared, units_source=source)


def canonical_units(name: str) -> str:
    """'in', 'inches', 'Inch' → 'inch'; MeshError for a unit this hub does not know."""
    canonical = _UNIT_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise MeshError(f"unknown unit '{name}': use one of {', '.join(UNITS_MM)}")
    return canonical


def _foreign(data: bytes) -> str | None:
    for signature, what in _FOREIGN_SIGNATURES:
        if data.startswith(signature):
            return what
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])


def _read_stl(data: bytes, limits: Limits) -> tuple[np.ndarray, str]:
    size = len(data)
    count = struct.unpack_from("<I", data, 80)[0] if size >= 84 else None
    if count is not None and 84 + 50 * count == size:
        # A binary STL whose size matches its header, even if the header starts with
        # "solid" as some exporters write.
        return _read_binary_stl(data, count, limits), "stl-binary"
    head = data[:1024]
    if head.lstrip()[:5].lower() == b"solid" and _looks_like_text(head):
        return _read_ascii_stl(data, limits), "stl-ascii"
    what = _foreign(data)
    if what is not None:
        raise MeshError(f"this is {what}, not an STL file")
    if _looks_like_text(head):
        raise MeshError("this is a text file but not an ASCII STL: an ASCII STL starts with 'solid'")
    if count is None:
        raise MeshError(f"the file has only {size} bytes: a binary STL needs at least 84")
    expected = 84 + 50 * count
    if count > limits.max_triangles:
        raise MeshError(
            f"this is not a valid binary STL: its header announces {count:,} triangles, more than "
            f"the {limits.max_triangles:,} this hub analyses, and its {size:,} bytes hold at most "
            f"{max(size - 84, 0) // 50:,}"
        )
    if size < expected:
        whole = (size - 84) // 50
        raise MeshError(
            f"the file ends after {whole:,} of the {count:,} triangles its header announces "
            f"({size:,} of {expected:,} bytes): it was cut short"
        )
    raise MeshError(
        f"the header announces {count:,} triangles ({expected:,} bytes) but the file has "
        f"{size:,} bytes: the header does not describe this file"
    )


def _read_binary_stl(data: bytes, count: int, limits: Limits) -> np.ndarray:
    if count > limits.max_triangles:
        raise MeshError(
            f"the file has {count:,} triangles, more than the {limits.max_triangles:,} this hub analyses"
        )
    corners = np.frombuffer(data, dtype=_STL_RECORD, count=count, offset=84)["corners"]
    _check_finite(corners)
    return corners


def _check_finite(corners: np.ndarray) -> None:
    finite = np.isfinite(corners)
    if finite.all():
        return
    bad = np.flatnonzero(~finite.reshape(len(corners), 9).all(axis=1))
    value = corners[bad[0]][~finite[bad[0]]][0]
    raise MeshError(
        f"{len(bad):,} triangle(s) have coordinates that are not finite numbers, the first is "
        f"triangle {bad[0] + 1:,} of {len(corners):,} ({value}): the file is corrupt"
    )


# Possessive quantifiers (\s++, \S++): whitespace and tokens never need to give back
# characters here, and refusing to backtrack keeps hostile input linear in time.
_ASCII_FACET = re.compile(
    rb"facet\s++normal\s++\S++\s++\S++\s++\S++\s++outer\s++loop"
    rb"\s++vertex\s++(\S++)\s++(\S++)\s++(\S++)"
    rb"\s++vertex\s++(\S++)\s++(\S++)\s++(\S++)"
    rb"\s++vertex\s++(\S++)\s++(\S++)\s++(\S++)"
    rb"\s++endloop\s++endfacet",
    re.IGNORECASE,
)
# What may stand between facets: blank space and the solid/endsolid lines.
_ASCII_BETWEEN = re.compile(rb"(?:\s++|(?:end)?solid[^\n]*+)*+", re.IGNORECASE)
_ENDFACET = re.compile(rb"endfacet", re.IGNORECASE)
_ASCII_CHUNK = 1 << 24


def _read_ascii_stl(data: bytes, limits: Limits) -> np.ndarray:
    # Parsed in slices that end after an "endfacet", so the intermediate lists of
    # numbers stay bounded however large the file is.
    blocks = []
    total = 0
    start = 0
    while start < len(data):
        stop = len(data)
        if stop - start > _ASCII_CHUNK:
            found = _ENDFACET.search(data, start + _ASCII_CHUNK)
            if found is not None:
                stop = found.end()
        block = _parse_ascii_block(data, start, stop)
        total += len(block)
        if total > limits.max_triangles:
            raise MeshError(
                f"the file has more than {limits.max_triangles:,} triangles, the most this hub analyses"
            )
        blocks.append(block)
        start = stop
    corners = np.concatenate(blocks) if blocks else np.empty((0, 3, 3))
    _check_finite(corners)
    return corners


def _parse_ascii_block(data: bytes, start: int, stop: int) -> np.ndarray:
    chunk = data[start:stop]
    parts = _ASCII_FACET.split(chunk)
    # split() alternates the text between facets with each facet's nine numbers.
    for gap, between in enumerate(parts[0::10]):
        if between.strip() and _ASCII_BETWEEN.fullmatch(between) is None:
            _ascii_error_between(data, start, chunk, gap, between)
    count = (len(parts) - 1) // 10
    if count == 0:
        return np.empty((0, 3, 3))
    numbers = np.array(parts[:-1], dtype=object).reshape(count, 10)[:, 1:]
    try:
        return numbers.astype(np.float64).reshape(count, 3, 3)
    except ValueError:
        pass
    for number, match in enumerate(_ASCII_FACET.finditer(chunk)):
        for token in numbers[number]:
            try:
                float(token)
            except ValueError:
                line = data.count(b"\n", 0, start + match.start()) + 1
                text = token[:40].decode("utf-8", "replace")
                raise MeshError(
                    f"ASCII STL, facet starting on line {line:,}: '{text}' is not a number"
                ) from None
    raise MeshError("ASCII STL: a vertex has a coordinate that is not a number")


def _ascii_error_between(data: bytes, start: int, chunk: bytes, gap: int, between: bytes) -> None:
    # The gap follows the facet before it; find where that one ends to name the line.
    gap_start = 0
    for number, match in enumerate(_ASCII_FACET.finditer(chunk)):
        if number == gap:
            break
        gap_start = match.end()
    at = start + gap_start + len(between) - len(between.lstrip())
    line = data.count(b"\n", 0, at) + 1
    text = between.strip().split(b"\n")[0][:60].decode("utf-8", "replace").strip()
    if text.lower().startswith("facet"):
        raise MeshError(
            f"ASCII STL, line {line:,}: this facet is malformed: a facet is 'facet normal' with "
            "three numbers, 'outer loop', three 'vertex' lines of three numbers, 'endloop', 'endfacet'"
        )
    raise MeshError(
        f"ASCII STL, line {line:,}: expected a facet (facet normal, outer loop, three "
        f"vertex lines, endloop, endfacet) but found '{text}'"
    )


def _read_with_trimesh(data: bytes, suffix: str, limits: Limits) -> tuple[np.ndarray, str, str]:
    fmt = _FORMAT_NAMES[suffix]
    what = _foreign(data)
    if suffix == ".3mf":
        # Checked and repacked: trimesh never sees the uploaded archive itself.
        payload = _safe_3mf(data, limits)
    elif suffix == ".glb" and not data.startswith(b"glTF"):
        raise MeshError(
            f"this is {what}, not {fmt}" if what else f"this is not {fmt}: it does not start with 'glTF'"
        )
    elif suffix != ".glb" and what is not None:
        raise MeshError(f"this is {what}, not {fmt}")
    else:
        _precount(data, suffix, limits)
        payload = data
    import trimesh

    try:
        scene = trimesh.load_scene(
            io.BytesIO(payload), file_type=suffix[1:], process=False, skip_materials=True
        )
    except MemoryError:
        raise
    except IndexError as exc:
        raise MeshError(
            f"could not read {fmt}: a face refers to a vertex the file does not have ({exc})"
        ) from None
    except Exception as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise MeshError(f"could not read {fmt}: {detail}") from None
    corners = _scene_corners(scene, limits, fmt)
    if suffix == ".3mf":
        declared = scene.metadata.get("units") or "millimeter"
        try:
            return corners, canonical_units(declared), "declared"
        except MeshError:
            raise MeshError(f"the 3MF declares an unknown unit '{declared}'") from None
    if suffix == ".glb":
        # glTF is in metres with Y up; printers and every other format here are Z up.
        turned = np.empty_like(corners)
        turned[..., 0] = corners[..., 0]
        turned[..., 1] = -corners[..., 2]
        turned[..., 2] = corners[..., 1]
        return turned, "m", "format"
    return corners, "mm", "assumed"


def _precount(data: bytes, suffix: str, limits: Limits) -> None:
    """Refuse files whose text announces too many faces, before trimesh parses them."""
    faces = 0
    if suffix == ".obj":
        # Every face line makes at least one triangle.
        faces = data.count(b"\nf ") + data.count(b"\nf\t") + int(data[:2] in (b"f ", b"f\t"))
    elif suffix == ".ply":
        header = data[: data.find(b"end_header")] if b"end_header" in data[:65536] else data[:65536]
        found = re.search(rb"element\s+face\s+(\d+)", header)
        faces = int(found.group(1)) if found else 0
    elif suffix == ".off":
        lines = (line.split(b"#")[0].strip() for line in data[:65536].splitlines())
        numbers = [line for line in lines if line][:2]
        if numbers:
            first = numbers[0]
            counts = first[3:].split() if first.upper().startswith(b"OFF") else []
            if not counts and len(numbers) > 1:
                counts = numbers[1].split()
            if len(counts) >= 2 and counts[1].isdigit():
                faces = int(counts[1])
    if faces > limits.max_triangles:
        raise MeshError(
            f"the file has {faces:,} faces, more than the {limits.max_triangles:,} triangles this hub analyses"
        )


def _scene_corners(scene, limits: Limits, fmt: str) -> np.ndarray:
    import trimesh

    instances = []
    total = 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geometry = scene.geometry.get(name)
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            continue
        # Counted per instance before anything is copied: one object placed a thousand
        # times is a thousand times the triangles.
        total += len(geometry.faces)
        if total > limits.max_triangles:
            raise MeshError(
                f"the file places more than {limits.max_triangles:,} triangles, the most this hub analyses"
            )
        instances.append((geometry, np.asarray(transform, dtype=np.float64)))
    parts = []
    for geometry, transform in instances:
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        faces = np.asarray(geometry.faces, dtype=np.int64)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise MeshError(f"could not read {fmt}: faces are not triangles")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise MeshError(f"could not read {fmt}: a face refers to a vertex the file does not have")
        rotation = transform[:3, :3]
        if not np.allclose(transform, np.eye(4)):
            vertices = _turn(vertices, rotation) + transform[:3, 3]
        if np.linalg.det(rotation) < 0:
            # A mirrored instance: keep its normals pointing outwards.
            faces = faces[:, ::-1]
        parts.append(vertices[faces])
    corners = np.concatenate(parts) if parts else np.empty((0, 3, 3))
    _check_finite(corners)
    return corners


def _safe_3mf(data: bytes, limits: Limits) -> bytes:
    """The model parts of a 3MF, checked and repacked uncompressed for trimesh.

    Sizes, ratios and names are checked from the ZIP's directory before anything is
    decompressed; bytes are counted again while reading, since the directory can lie.
    Trimesh then only ever sees the repacked archive.
    """
    if not data.startswith(b"PK"):
        what = _foreign(data)
        raise MeshError(
            f"this is {what}, not a 3MF file" if what else "this is not a 3MF file: a 3MF is a ZIP archive"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise MeshError(f"this 3MF is not a readable ZIP archive ({exc})") from None
    if len(members) > limits.max_archive_members:
        raise MeshError(
            f"the 3MF archive has {len(members):,} parts, more than the {limits.max_archive_members:,} allowed"
        )
    for info in members:
        _check_member_name(info.filename)
    # Only the model parts are ever unpacked (thumbnails and textures are not needed).
    models = [info for info in members if info.filename.lower().endswith(".model")]
    declared = sum(info.file_size for info in models)
    if declared > limits.max_uncompressed_bytes:
        raise MeshError(
            f"the 3MF archive would unpack to {declared:,} bytes, more than the "
            f"{limits.max_uncompressed_bytes:,} this hub allows"
        )
    # Each large part, and all of them together (a bomb may be split into small parts).
    whole = zipfile.ZipInfo("the model parts together")
    whole.file_size = declared
    whole.compress_size = sum(info.compress_size for info in models)
    for info in [*models, whole]:
        if info.flag_bits & 0x1:
            raise MeshError(f"the 3MF part '{info.filename}' is encrypted")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR_BYTES and ratio > limits.max_compression_ratio:
            raise MeshError(
                f"the 3MF part '{info.filename}' is compressed {ratio:,.0f} to 1, more than the "
                f"{limits.max_compression_ratio:,.0f} to 1 this hub accepts: it looks like a zip bomb"
            )
    if not any(info.filename.lower().lstrip("/") == "3d/3dmodel.model" for info in models):
        raise MeshError("this 3MF has no 3D/3dmodel.model part, so it holds no model")
    budget = limits.max_uncompressed_bytes
    repacked = io.BytesIO()
    triangles = 0
    with zipfile.ZipFile(repacked, "w", compression=zipfile.ZIP_STORED) as out:
        for info in models:
            content = _read_member(archive, info, budget)
            budget -= len(content)
            if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
                raise MeshError(
                    f"the 3MF part '{info.filename}' declares a DOCTYPE or entities, which 3MF never uses"
                )
            triangles += _count_triangle_elements(content)
            if triangles > limits.max_triangles:
                raise MeshError(
                    f"the 3MF has more than {limits.max_triangles:,} triangles, the most this hub analyses"
                )
            out.writestr(info.filename, content)
    return repacked.getvalue()


def _count_triangle_elements(content: bytes) -> int:
    # bytes.count runs at memory speed and keeps nothing; "<m:triangle" and the like
    # are caught by the ":triangle" forms.
    return sum(
        content.count(opening + space)
        for opening in (b"<triangle", b":triangle")
        for space in (b" ", b"\t", b"\n", b"\r", b"/")
    )


def _check_member_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name) or "\0" in name:
        raise MeshError(f"the 3MF archive contains a part with an unsafe name: '{name}'")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    pieces = []
    read = 0
    limit = min(info.file_size, budget)
    try:
        with archive.open(info) as stream:
            while True:
                piece = stream.read(1 << 20)
                if not piece:
                    break
                read += len(piece)
                if read > limit:
                    raise MeshError(
                        f"the 3MF part '{info.filename}' unpacks to more than the {limit:,} bytes it may take"
                    )
                pieces.append(piece)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise MeshError(f"the 3MF part '{info.filename}' cannot be unpacked ({exc})") from None
    return b"".join(pieces)


# --- figures ---------------------------------------------------------------------------


def _figures(mesh: _Mesh) -> MeshFigures:
    corners = mesh.corners
    count = len(corners)
    scale = mesh.scale
    volume, area, degenerate = _surface_sums(corners)
    # A fresh contiguous copy in which -0.0 became 0.0: the same coordinate, other bits.
    points = np.add(corners, 0.0, dtype=corners.dtype).reshape(count * 3, 3)
    index, unique = _merge_exact(points)
    del points
    faces = index.reshape(count, 3)
    edges = _edge_figures(faces, len(unique))
    bodies = _count_bodies(edges.pop("unique_edges"), len(unique))
    duplicates = _count_duplicates(faces, len(unique))
    unique = unique.astype(np.float64) * scale
    bbox_min = unique.min(axis=0)
    bbox_max = unique.max(axis=0)
    obb, approximate = _oriented_box(unique)
    volume_mm3 = volume * scale**3
    reliable = edges["watertight"] and edges["winding_consistent"]
    mass = {
        material: round(abs(volume_mm3) / 1000.0 * density, 3)
        for material, density in MATERIAL_DENSITIES_G_CM3.items()
    }
    return MeshFigures(
        format=mesh.format,
        units=mesh.units,
        units_source=mesh.units_source,
        triangles=count,
        vertices=len(unique),
        bodies=bodies,
        bbox_min=_triple(bbox_min),
        bbox_max=_triple(bbox_max),
        size=_triple(bbox_max - bbox_min),
        obb_size=_triple(obb),
        obb_approximate=approximate,
        volume_mm3=float(volume_mm3),
        area_mm2=float(area * scale**2),
        watertight=edges["watertight"],
        winding_consistent=edges["winding_consistent"],
        degenerate_faces=degenerate,
        duplicate_faces=duplicates,
        non_manifold_edges=edges["non_manifold_edges"],
        boundary_edges=edges["boundary_edges"],
        mass_g=mass,
        mass_reliable=reliable,
    )


def _turn(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """points @ matrix.T for many points: einsum's plain loop, as BLAS matmul on tall,
    three-column arrays was measured an order of magnitude slower on busy machines."""
    return np.einsum("...j,kj->...k", points, matrix)


def _triple(values) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _surface_sums(corners: np.ndarray) -> tuple[float, float, int]:
    """Signed volume, area and zero-area count, summed over slices of triangles.

    The volume is the divergence-theorem sum trimesh uses (cross product of two edges
    times the sum of the corners' x), so the two agree to rounding.
    """
    volume = 0.0
    area = 0.0
    degenerate = 0
    for start in range(0, len(corners), _CHUNK):
        c = corners[start : start + _CHUNK].astype(np.float64)
        e1 = c[:, 1] - c[:, 0]
        e2 = c[:, 2] - c[:, 0]
        cx = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
        cy = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
        cz = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        volume += float(np.dot(cx, c[:, 0, 0] + c[:, 1, 0] + c[:, 2, 0]))
        doubled = np.sqrt(cx * cx + cy * cy + cz * cz)
        area += float(doubled.sum())
        degenerate += int(np.count_nonzero(doubled == 0.0))
    return volume / 6.0, area / 2.0, degenerate


_HASH_MULTIPLIERS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def _merge_exact(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each point among the distinct points, and the distinct points.

    Rows are hashed to a 64-bit key and sorted by it (with the row's index packed into
    the low bits, a plain sort is several times faster than an argsort), then neighbours
    are compared in full. Rows that differ but share a key are regrouped exactly, so a
    hash collision can never merge two different corners.
    """
    count = len(points)
    if points.dtype.itemsize == 4:
        bits = points.view(np.uint32).reshape(count, 3)
        # x and y fit in one 64-bit word exactly; z is hashed in.
        columns = [
            (bits[:, 0].astype(np.uint64) << np.uint64(32)) | bits[:, 1],
            np.ascontiguousarray(bits[:, 2]),
        ]
    else:
        bits = points.view(np.uint64).reshape(count, 3)
        columns = [bits[:, 0], bits[:, 1], bits[:, 2]]
    key = columns[0] * _HASH_MULTIPLIERS[0]
    for number, column in enumerate(columns[1:]):
        key ^= (column.astype(np.uint64) + np.uint64(number + 1)) * _HASH_MULTIPLIERS[1]
        key ^= key >> np.uint64(31)
    if count < _INDEX_BITS_LIMIT:
        low = np.uint64(_INDEX_BITS_LIMIT - 1)
        key &= ~low
        key |= np.arange(count, dtype=np.uint64)
        key.sort()
        order = (key & low).astype(np.int64)
        key >>= np.uint64(_INDEX_BITS)
    else:
        order = np.argsort(key)
        key = key[order]
    same_key = key[1:] == key[:-1]
    del key
    starts = _row_starts(columns, order)
    collided = np.flatnonzero(starts[1:] & same_key)
    if len(collided):
        # Rows that differ but share a key: sort each such run by the full row.
        run = np.cumsum(np.concatenate(([True], ~same_key)))
        in_bad_run = np.isin(run, run[collided + 1])
        positions = np.flatnonzero(in_bad_run)
        members = order[positions]
        rows = np.ascontiguousarray(bits[members]).view(np.dtype((np.void, bits.dtype.itemsize * 3))).ravel()
        row_group = np.unique(rows, return_inverse=True)[1].reshape(-1)
        order[positions] = members[np.lexsort((row_group, run[positions]))]
        starts = _row_starts(columns, order)
    group = np.cumsum(starts, dtype=np.int32 if count < 2**31 else np.int64)
    group -= 1
    index = np.empty(count, dtype=group.dtype)
    index[order] = group
    return index, points[order[starts]]


# Row indices packed under the hash: 24 bits cover 5,000,000 triangles' 15,000,000 corners.
_INDEX_BITS = 24
_INDEX_BITS_LIMIT = 1 << _INDEX_BITS


def _row_starts(columns: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """Where, in `order`, a row differs from the row before it."""
    starts = np.zeros(len(order), dtype=bool)
    starts[0] = True
    for column in columns:
        in_order = column[order]
        starts[1:] |= in_order[1:] != in_order[:-1]
    return starts


def _edge_figures(faces: np.ndarray, vertex_count: int) -> dict:
    """Edge use counts from one sort of the directed edges.

    Each directed edge a->b becomes the key (min, max) * 2 + (a > b), so after sorting
    the uses of one undirected edge sit together and the low bit tells their direction.
    """
    keys = np.empty((len(faces), 3), dtype=np.int64)
    for corner in range(3):
        a = faces[:, corner].astype(np.int64)
        b = faces[:, (corner + 1) % 3].astype(np.int64)
        column = np.minimum(a, b)
        column *= vertex_count
        column += np.maximum(a, b)
        column *= 2
        column += a > b
        keys[:, corner] = column
    del a, b, column
    keys = keys.ravel()
    keys.sort()
    undirected = keys >> 1
    starts = np.flatnonzero(np.concatenate(([True], undirected[1:] != undirected[:-1])))
    uses = np.diff(np.append(starts, len(keys)))
    pairs = starts[uses == 2]
    same_way = pairs[keys[pairs] == keys[pairs + 1]]
    # An edge from a corner to itself (in a degenerate triangle) has no direction.
    same_way = same_way[undirected[same_way] // vertex_count != undirected[same_way] % vertex_count]
    return {
        "watertight": bool(len(keys) > 0 and (uses == 2).all()),
        "winding_consistent": bool(len(keys) > 0 and len(same_way) == 0),
        "non_manifold_edges": int(np.count_nonzero(uses > 2)),
        "boundary_edges": int(np.count_nonzero(uses == 1)),
        "unique_edges": undirected[starts],
    }


def _count_bodies(unique_edges: np.ndarray, vertex_count: int) -> int:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    # The keys are sorted by their lower vertex, so they are already in CSR row order.
    low = unique_edges // vertex_count
    high = unique_edges % vertex_count
    indptr = np.zeros(vertex_count + 1, dtype=np.int64)
    np.cumsum(np.bincount(low, minlength=vertex_count), out=indptr[1:])
    graph = csr_matrix((np.ones(len(high), dtype=np.int8), high, indptr), shape=(vertex_count, vertex_count))
    count, _ = connected_components(graph, directed=True, connection="weak", return_labels=True)
    return int(count)


def _count_duplicates(faces: np.ndarray, vertex_count: int) -> int:
    ordered = np.sort(faces, axis=1).astype(np.int64)
    if vertex_count < (1 << 21):
        keys = (ordered[:, 0] << 42) | (ordered[:, 1] << 21) | ordered[:, 2]
        keys.sort()
        return int(np.count_nonzero(keys[1:] == keys[:-1]))
    order = np.lexsort(ordered.T[::-1])
    ordered = ordered[order]
    return int(np.count_nonzero((ordered[1:] == ordered[:-1]).all(axis=1)))


def _oriented_box(points: np.ndarray) -> tuple[np.ndarray, bool]:
    """Extents of a near-minimal oriented box around the points, largest first.

    trimesh.bounds.oriented_bounds is run on the convex hull. For large meshes it gets a
    deterministic sample (the hull of up to 10,000 points, then up to 1,000 hull points,
    always with the extreme points along 13 directions); the box it finds is then
    measured around *all* points, so it always encloses the part and is at worst a
    little larger than the minimal one. The flag says when that approximation was made.
    """
    import trimesh
    from scipy.spatial import ConvexHull, QhullError

    aabb = points.max(axis=0) - points.min(axis=0)
    approximate = False
    rng = np.random.default_rng(0)
    candidates = points
    if len(candidates) > _OBB_CANDIDATES:
        candidates = _sample_with_extremes(candidates, _OBB_CANDIDATES, rng)
        approximate = True
    try:
        candidates = candidates[ConvexHull(candidates).vertices]
    except (QhullError, ValueError):
        pass  # flat or degenerate: oriented_bounds has its own planar path
    if len(candidates) > _OBB_HULL_POINTS:
        candidates = _sample_with_extremes(candidates, _OBB_HULL_POINTS, rng)
        approximate = True
    try:
        to_origin, _ = trimesh.bounds.oriented_bounds(candidates)
    except Exception:
        return np.sort(aabb)[::-1], approximate
    rotation = np.asarray(to_origin, dtype=np.float64)[:3, :3]
    turned = _turn(points, rotation)
    extents = turned.max(axis=0) - turned.min(axis=0)
    if np.prod(extents) > np.prod(aabb):
        extents = aabb
    return np.sort(extents)[::-1], approximate


_DIRECTIONS = np.array(
    [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [1, -1, 0],
        [1, 0, 1],
        [1, 0, -1],
        [0, 1, 1],
        [0, 1, -1],
        [1, 1, 1],
        [1, 1, -1],
        [1, -1, 1],
        [-1, 1, 1],
    ],
    dtype=np.float64,
)


def _sample_with_extremes(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    projected = np.einsum("kj,nj->kn", _DIRECTIONS, points)
    extremes = np.concatenate([projected.argmin(axis=1), projected.argmax(axis=1)])
    chosen = rng.integers(0, len(points), size=count)
    return points[np.unique(np.concatenate([chosen, extremes]))]


def _simplify(corners: np.ndarray, target: int) -> np.ndarray:
    flat = corners.reshape(-1, 3)
    low = flat.min(axis=0)
    span = max(float((flat.max(axis=0) - low).max()), 1e-12)
    cells = max(int(math.sqrt(target / 4)), 16)
    for _ in range(6):
        grid = np.floor((flat - low) / span * cells).astype(np.int64)
        np.clip(grid, 0, cells - 1, out=grid)
        keys, inverse = np.unique(
            ((grid[:, 0] * cells) + grid[:, 1]) * cells + grid[:, 2], return_inverse=True
        )
        del grid
        inverse = inverse.reshape(-1, 3)
        whole = (
            (inverse[:, 0] != inverse[:, 1])
            & (inverse[:, 1] != inverse[:, 2])
            & (inverse[:, 0] != inverse[:, 2])
        )
        kept = _first_of_each(np.sort(inverse[whole], axis=1))
        if len(kept) <= target:
            counts = np.maximum(np.bincount(inverse.ravel(), minlength=len(keys)), 1)
            centre = np.stack(
                [
                    np.bincount(inverse.ravel(), weights=flat[:, axis], minlength=len(keys))
                    for axis in range(3)
                ],
                axis=1,
            )
            centre /= counts[:, None]
            return centre[inverse[whole][kept]]
        # A surface's triangle count goes with the square of the grid's resolution.
        cells = int(cells * min(0.8, 0.95 * math.sqrt(target / len(kept))))
        if cells < 16:
            break
    # Not a surface a coarser grid can simplify (a triangle soup): thin it out evenly.
    return corners[:: -(-len(corners) // target)]


def _first_of_each(triples: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct row of an (n, 3) int array."""
    if len(triples) == 0 or triples.max() < (1 << 21):
        packed = (triples[:, 0] << 42) | (triples[:, 1] << 21) | triples[:, 2]
        return np.sort(np.unique(packed, return_index=True)[1])
    return np.sort(np.unique(triples, axis=0, return_index=True)[1])


# --- differences -----------------------------------------------------------------------


def _measure(corners: np.ndarray) -> dict:
    volume, area, _ = _surface_sums(corners)
    flat = corners.reshape(-1, 3)
    low = flat.min(axis=0)
    high = flat.max(axis=0)
    return {
        "triangles": len(corners),
        "volume_mm3": volume,
        "area_mm2": area,
        "bbox_min": [float(x) for x in low],
        "bbox_max": [float(x) for x in high],
        "size": [float(x) for x in high - low],
    }


def _sample_surface(
    corners: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points spread evenly by area over the triangles, and the triangle of each."""
    e1 = corners[:, 1] - corners[:, 0]
    e2 = corners[:, 2] - corners[:, 0]
    weights = np.linalg.norm(np.cross(e1, e2), axis=1)
    cumulative = np.cumsum(weights)
    if cumulative[-1] <= 0:
        chosen = rng.integers(0, len(corners), size=count)
    else:
        chosen = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
        chosen = np.minimum(chosen, len(corners) - 1)
    u = rng.random(count)
    v = rng.random(count)
    outside = u + v > 1.0
    u[outside] = 1.0 - u[outside]
    v[outside] = 1.0 - v[outside]
    return corners[chosen, 0] + e1[chosen] * u[:, None] + e2[chosen] * v[:, None], chosen


def _distances(
    points: np.ndarray,
    other_points: np.ndarray,
    other_faces: np.ndarray,
    other_corners: np.ndarray,
    deadline: float,
) -> tuple[np.ndarray, bool]:
    """Distance from each point to the other surface, and whether it was refined.

    The distance to the nearest sample of the other surface is an upper bound that is
    off by up to the sample spacing. While the time budget allows it is refined by the
    exact distance to candidate triangles: those whose centres are nearest (small
    triangles) and those the nearest samples were drawn from (large ones, whose centres
    can be far from the point). The smallest upper bound is kept.
    """
    import trimesh
    from scipy.spatial import cKDTree

    k = min(8, len(other_points))
    distance, nearest_samples = cKDTree(other_points).query(points, k=k)
    distance = distance.reshape(len(points), k)[:, 0]
    if time.perf_counter() > deadline:
        return distance, False
    candidates = [other_faces[nearest_samples.reshape(len(points), k)]]
    if len(other_corners) > k:
        _, nearest_centres = cKDTree(other_corners.mean(axis=1)).query(points, k=k)
        candidates.append(nearest_centres.reshape(len(points), k))
    else:
        candidates.append(np.broadcast_to(np.arange(len(other_corners)), (len(points), len(other_corners))))
    if time.perf_counter() > deadline:
        return distance, False
    faces = np.concatenate(candidates, axis=1)
    per_point = faces.shape[1]
    repeated = np.repeat(points, per_point, axis=0)
    closest = trimesh.triangles.closest_point(other_corners[faces.ravel()], repeated)
    exact = np.linalg.norm(closest - repeated, axis=1).reshape(len(points), per_point).min(axis=1)
    return np.minimum(distance, exact), True


def _right_angle_rotations() -> list[np.ndarray]:
    """The 24 rotations that map the coordinate axes onto each other."""
    rotations = []
    for order in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for signs in np.ndindex(2, 2, 2):
            matrix = np.zeros((3, 3))
            for row, column in enumerate(order):
                matrix[row, column] = -1.0 if signs[row] else 1.0
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return rotations


def _align(
    moving: np.ndarray, fixed: np.ndarray, tree, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A rigid move of `moving` onto `fixed`: ICP from each right-angle orientation.

    Exporters turn parts by right angles, so a result within 2 degrees of one is snapped
    to it (with its shift fitted again) when that fits as well.
    """
    few = moving[rng.choice(len(moving), size=min(500, len(moving)), replace=False)]
    more = moving[rng.choice(len(moving), size=min(3000, len(moving)), replace=False)]
    best = None
    for start in _right_angle_rotations():
        shift = fixed.mean(axis=0) - moving.mean(axis=0) @ start.T
        rotation, shift, error = _icp(few, fixed, tree, start, shift, iterations=5)
        if best is None or error < best[2]:
            best = (rotation, shift, error)
    rotation, shift, error = _icp(more, fixed, tree, best[0], best[1], iterations=15)
    square = min(_right_angle_rotations(), key=lambda r: _rotation_angle(r.T @ rotation))
    if _rotation_angle(square.T @ rotation) < 2.0:
        _, snapped_shift, snapped_error = _icp(more, fixed, tree, square, shift, iterations=10, turn=False)
        if snapped_error <= error * 1.05:
            return square, snapped_shift
    return rotation, shift


def _icp(
    points, fixed, tree, rotation, shift, *, iterations: int, turn: bool = True
) -> tuple[np.ndarray, np.ndarray, float]:
    error = math.inf
    for _ in range(iterations):
        moved = _turn(points, rotation) + shift
        distance, nearest = tree.query(moved)
        error = float(distance.mean())
        # The closest 80 % of pairs: parts that really changed should not pull the fit.
        keep = distance <= np.quantile(distance, 0.8)
        source, target = points[keep], fixed[nearest[keep]]
        source_centre, target_centre = source.mean(axis=0), target.mean(axis=0)
        if turn:
            u, _, vt = np.linalg.svd((source - source_centre).T @ (target - target_centre))
            flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T)) or 1.0])
            rotation = vt.T @ flip @ u.T
        shift = target_centre - source_centre @ rotation.T
    return rotation, shift, error


def _rotation_angle(rotation: np.ndarray) -> float:
    cosine = (np.trace(rotation) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _moved_regions(
    points: np.ndarray, distance: np.ndarray, threshold: float, kind: str, low, high
) -> list[dict]:
    """Group the points that moved more than the threshold into boxes on a coarse grid."""
    from scipy import ndimage

    moved = distance > threshold
    if not moved.any():
        return []
    cells = 16
    span = np.maximum(np.asarray(high) - np.asarray(low), 1e-9)
    where = np.clip(((points[moved] - low) / span * cells).astype(np.int64), 0, cells - 1)
    grid = np.zeros((cells, cells, cells), dtype=bool)
    grid[where[:, 0], where[:, 1], where[:, 2]] = True
    labels, _ = ndimage.label(grid, structure=np.ones((3, 3, 3), dtype=bool))
    label = labels[where[:, 0], where[:, 1], where[:, 2]]
    moved_points = points[moved]
    moved_distance = distance[moved]
    regions = []
    for number in np.unique(label):
        mine = label == number
        group = moved_points[mine]
        regions.append(
            {
                "kind": kind,
                "bbox_min": [float(x) for x in group.min(axis=0)],
                "bbox_max": [float(x) for x in group.max(axis=0)],
                "centroid": [float(x) for x in group.mean(axis=0)],
                "max_distance_mm": float(moved_distance[mine].max()),
                "share": float(mine.sum() / len(points)),
            }
        )
    return regions


# --- thumbnails ------------------------------------------------------------------------

_BACKGROUND = np.array([246, 247, 249], dtype=np.float64)
_BASE_COLOUR = np.array([132, 158, 190], dtype=np.float64)  # the 3D viewer's blue-grey
_SUPERSAMPLE = 2
_FRAGMENT_BATCH = 4_000_000
_FRAGMENT_BUDGET = 60_000_000


def _render(corners: np.ndarray, size: int) -> np.ndarray:
    """An RGB image (size, size, 3) of the triangles: orthographic view, z-buffer, Lambert.

    Triangles are scan-converted in numpy: each is expanded into the pixel rows its
    height covers, each row into the pixels between the triangle's edges, and the
    nearest fragment wins each pixel. Work is proportional to the triangle count plus
    the covered pixels, so a million tiny triangles cost little more than a few big ones.
    """
    width = size * _SUPERSAMPLE
    eye = np.array([-1.0, -1.3, 1.0])
    eye /= np.linalg.norm(eye)
    forward = -eye
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    light = eye + 0.6 * up - 0.4 * right
    light /= np.linalg.norm(light)

    view = np.stack([right, up, forward])
    x = np.empty((len(corners), 3))
    y = np.empty((len(corners), 3))
    z = np.empty((len(corners), 3))
    for corner in range(3):
        # Screen x, y and the depth away from the eye, one corner at a time.
        point = np.asarray(corners[:, corner], dtype=np.float64)
        x[:, corner], y[:, corner], z[:, corner] = _turn(point, view).T
    normal = np.cross(
        np.stack([x[:, 1] - x[:, 0], y[:, 1] - y[:, 0], z[:, 1] - z[:, 0]], axis=1),
        np.stack([x[:, 2] - x[:, 0], y[:, 2] - y[:, 0], z[:, 2] - z[:, 0]], axis=1),
    )
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))
    length[length == 0] = 1.0
    # The light in view coordinates (the view matrix is a rotation).
    shade = 0.28 + 0.72 * np.abs(_turn(normal, (view @ light)[None, :])[:, 0]) / length
    del normal, length

    low = np.array([x.min(), y.min()])
    high = np.array([x.max(), y.max()])
    extent = max(float((high - low).max()), 1e-12)
    scale = width * 0.88 / extent
    x -= (low[0] + high[0]) / 2.0
    x *= scale
    x += width / 2.0
    y -= (low[1] + high[1]) / 2.0
    y *= -scale
    y += width / 2.0

    depth = np.full(width * width, np.inf)
    colour = np.zeros(width * width)
    rows_from = np.ceil(_least(y) - 0.5).clip(0, width).astype(np.int64)
    rows_to = np.floor(_most(y) - 0.5).clip(-1, width - 1).astype(np.int64)
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    visible = np.flatnonzero((rows_to >= rows_from) & (np.abs(area2) > 1e-12))
    # Batches keep the fragment arrays bounded; the estimate is rows times width.
    spans = (rows_to - rows_from + 1)[visible] * (
        np.ceil(_most(x[visible]) - _least(x[visible])).astype(np.int64) + 1
    )
    if spans.sum() > _FRAGMENT_BUDGET:
        # Only a hostile pile of huge overlapping triangles gets here (a real part covers
        # the picture a few times over): draw a sample of them rather than all.
        keep = np.random.default_rng(0).random(len(spans)) < _FRAGMENT_BUDGET / spans.sum()
        visible, spans = visible[keep], spans[keep]
    boundaries = np.searchsorted(
        np.cumsum(spans), np.arange(1, 1 + spans.sum() // _FRAGMENT_BATCH + 1) * _FRAGMENT_BATCH
    )
    for batch in np.split(visible, boundaries):
        if len(batch):
            _raster_batch(batch, x, y, z, area2, rows_from, rows_to, shade, width, depth, colour)

    covered = np.isfinite(depth)
    image = np.empty((width * width, 3))
    image[:] = _BACKGROUND
    image[covered] = colour[covered, None] * _BASE_COLOUR + (1 - colour[covered, None]) * 18.0
    image = image.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _least(values: np.ndarray) -> np.ndarray:
    # Row-wise minimum of an (n, 3) array: much faster than .min(axis=1) for 3 columns.
    return np.minimum(np.minimum(values[:, 0], values[:, 1]), values[:, 2])


def _most(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(values[:, 0], values[:, 1]), values[:, 2])


def _raster_batch(tris, x, y, z, area2, rows_from, rows_to, shade, width, depth, colour) -> None:
    counts = rows_to[tris] - rows_from[tris] + 1
    tri = np.repeat(tris, counts)
    first = np.cumsum(counts) - counts
    row = rows_from[tri] + (np.arange(len(tri)) - np.repeat(first, counts))
    centre_y = row + 0.5
    left = np.full(len(tri), np.inf)
    right = np.full(len(tri), -np.inf)
    tx, ty = x[tri], y[tri]
    for i, j in ((0, 1), (1, 2), (2, 0)):
        y0, y1 = ty[:, i], ty[:, j]
        x0, x1 = tx[:, i], tx[:, j]
        crosses = (np.minimum(y0, y1) <= centre_y) & (centre_y <= np.maximum(y0, y1)) & (y0 != y1)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (centre_y - y0) * (x1 - x0) / (y1 - y0)
        left = np.where(crosses, np.minimum(left, at), left)
        right = np.where(crosses, np.maximum(right, at), right)
    cols_from = np.ceil(left - 0.5).clip(0, width).astype(np.int64)
    cols_to = np.floor(right - 0.5).clip(-1, width - 1).astype(np.int64)
    widths = np.maximum(cols_to - cols_from + 1, 0)
    keep = widths > 0
    tri, row, cols_from, widths = tri[keep], row[keep], cols_from[keep], widths[keep]
    if len(tri) == 0:
        return
    fragment_tri = np.repeat(tri, widths)
    first = np.cumsum(widths) - widths
    col = np.repeat(cols_from, widths) + (np.arange(len(fragment_tri)) - np.repeat(first, widths))
    fragment_row = np.repeat(row, widths)
    # Depth from the triangle's plane: z = z0 + dz/dx (px - x0) + dz/dy (py - y0).
    t = fragment_tri
    x0, y0, z0 = x[t, 0], y[t, 0], z[t, 0]
    ex1, ey1, ez1 = x[t, 1] - x0, y[t, 1] - y0, z[t, 1] - z0
    ex2, ey2, ez2 = x[t, 2] - x0, y[t, 2] - y0, z[t, 2] - z0
    dzdx = (ez1 * ey2 - ez2 * ey1) / area2[t]
    dzdy = (ex1 * ez2 - ex2 * ez1) / area2[t]
    fragment_depth = z0 + dzdx * (col + 0.5 - x0) + dzdy * (fragment_row + 0.5 - y0)
    pixel = fragment_row * width + col
    np.minimum.at(depth, pixel, fragment_depth)
    wins = fragment_depth <= depth[pixel]
    colour[pixel[wins]] = shade[t[wins]]


def _png(image: np.ndarray) -> bytes:
    height, width, _ = image.shape
    raw = np.zeros((height, width * 3 + 1), dtype=np.uint8)  # filter byte 0 on each row
    raw[:, 1:] = image.reshape(height, width * 3)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
