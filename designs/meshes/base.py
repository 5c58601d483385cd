"""What every part of the mesh package shares: limits, errors, units, the figures' shape,
and the cheap checks other apps call (`is_mesh_path`, `fits`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Any

import numpy as np

MESH_EXTENSIONS = (".stl", ".3mf", ".obj", ".ply", ".off", ".glb")
# CAD files measured from their exact geometry (designs/meshes/step.py) and shown, compared
# and fit-checked through a tessellation, like meshes.
STEP_EXTENSIONS = (".step", ".stp")


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


class MeshError(Exception):
    """A mesh file that cannot be read or measured.

    `reason` is a sentence for the person who uploaded the file. Retrying never helps:
    the problem is in the bytes, so `retryable` is always False.
    """

    retryable = False

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def require_finite(value: Any, *, what: str) -> None:
    """Refuse a result holding NaN or infinity anywhere (nested dicts and lists too).

    Coordinates near the float range's edge overflow areas and volumes, and degenerate
    surfaces divide by zero: such a number must become a reason the person can read, never
    reach a JSON column (PostgreSQL refuses NaN) or the API (JSON has no NaN).
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise MeshError(
            f"{what} came out as {value} (the coordinates are too large or the surface is "
            "degenerate): check the file's units and export settings"
        )
    if isinstance(value, dict):
        for item in value.values():
            require_finite(item, what=what)
    elif isinstance(value, list | tuple):
        for item in value:
            require_finite(item, what=what)


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

    format: str  # "stl-binary", "stl-ascii", "3mf", "obj", "ply", "off", "glb", "step"
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
    # How volume_mm3 was found: "single" (one body), "sum" (bodies that share no space),
    # "union" (overlapping closed bodies, measured as their union) or "approximate" (they
    # may overlap but their union could not be measured: volume_note says why).
    volume_method: str = "single"
    volume_note: str = ""
    # Several bodies or objects: each one's figures (designs/meshes/figures.py says which).
    body_figures: list[dict[str, Any]] = field(default_factory=list)
    overlapping_bodies: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("bbox_min", "bbox_max", "size", "obb_size"):
            data[name] = list(data[name])
        data["version"] = FIGURES_VERSION
        require_finite(data, what="A figure of this mesh")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MeshFigures:
        """Rebuild figures stored by `to_dict`.

        Raises ValueError for figures of another FIGURES_VERSION: recompute those.
        """
        if data.get("version") != FIGURES_VERSION:
            raise ValueError(f"figures of version {data.get('version')!r}, expected {FIGURES_VERSION}")
        # Figures stored before a field with a default existed take that default.
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data or not _has_default(f)}
        for name in ("bbox_min", "bbox_max", "size", "obb_size"):
            values[name] = tuple(float(x) for x in values[name])
        values["mass_g"] = dict(values["mass_g"])
        return cls(**values)


def _has_default(item: Field) -> bool:
    return item.default is not MISSING or item.default_factory is not MISSING


def is_mesh_path(path: str) -> bool:
    """Whether a file is analysed, previewed and compared as a part: a mesh or a STEP file."""
    suffix = PurePosixPath(path).suffix.lower()
    return suffix in MESH_EXTENSIONS or suffix in STEP_EXTENSIONS


def is_step_path(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in STEP_EXTENSIONS


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
    for key in ("body_figures", "overlapping_bodies", "objects"):
        if figures.get(key):
            scaled[key] = [_part_in_units(part, factor) for part in figures[key]]
    scaled["units"], scaled["units_source"] = units, "given"
    return scaled


def _part_in_units(part: dict, factor: float) -> dict:
    """One body's or object's figures re-scaled: lengths, areas and volumes by their suffix."""
    scaled = dict(part)
    for key, value in part.items():
        if key in ("bbox_min", "bbox_max", "size"):
            scaled[key] = [v * factor for v in value]
        elif key.endswith("_mm2"):
            scaled[key] = value * factor**2
        elif key.endswith("_mm3"):
            scaled[key] = value * factor**3
    return scaled


def fits(obb_size: Sequence[float], build_volume: Sequence[float]) -> bool:
    """Whether a box with these three extents (a part's oriented bounding box, in any
    order) fits a build volume given as (x, y, z), z being the height.

    The part may lie on any of its faces and turn freely about the vertical axis: for each
    choice of the extent that stands vertical (it must not exceed z), the other two form
    a rectangle that must fit the bed's x × y rectangle, straight or at any angle. The
    angle matters for long thin parts: 300 × 10 mm fits a 250 × 210 mm bed diagonally.
    Every axis-aligned placement is one of these, so a part the sorted-extents check
    accepts is accepted here too.

    Exact for boxes (the arithmetic falls back to exact fractions near the boundary, so a
    part exactly as large as the room fits), and a handful of float operations otherwise.
    Placements tilted out of the vertical (a rod along the volume's space diagonal) are
    not considered: slicers lay parts on the bed.
    """
    part = [float(x) for x in obb_size]
    room = [float(x) for x in build_volume]
    if len(part) != 3 or len(room) != 3:
        raise ValueError("fits() needs three extents and three build-volume sizes")
    bed_long, bed_short = max(room[0], room[1]), min(room[0], room[1])
    for up in range(3):
        if part[up] > room[2]:
            continue
        long_side, short_side = sorted((part[(up + 1) % 3], part[(up + 2) % 3]), reverse=True)
        if rectangle_fits(long_side, short_side, bed_long, bed_short):
            return True
    return False


def rectangle_fits(p: float, q: float, a: float, b: float) -> bool:
    """Whether a p × q rectangle (p ≥ q) fits an a × b rectangle (a ≥ b) at some angle.

    Straight when p ≤ a and q ≤ b. Otherwise, with p > a, it can only fit tilted, and
    does exactly when q ≤ b and b ≥ (2pqa + (p² − q²)·√(p² + q² − a²)) / (p² + q²)
    (Carver, 1956: the tightest tilt puts the long side's ends against the long walls).
    """
    if q > b:
        return False
    if p <= a:
        return True
    floats = _tilted_terms(p, q, a, b)
    if floats is not None:
        lhs, rhs_squared = floats
        return lhs >= 0 and lhs * lhs >= rhs_squared
    exact_lhs, exact_rhs_squared = _tilted_terms_exact(*(Fraction(v) for v in (p, q, a, b)))
    return exact_lhs >= 0 and exact_lhs * exact_lhs >= exact_rhs_squared


# Float results closer to the boundary than this share of their size are decided again
# with fractions: a part touching the walls must not fail on a rounding error.
_CLOSE = 1e-9


def _tilted_terms(p: float, q: float, a: float, b: float) -> tuple[float, float] | None:
    """Both sides of Carver's condition, squared free of the root: b(p² + q²) − 2pqa and
    (p² − q²)²(p² + q² − a²); None when floats cannot tell their order for sure."""
    s = p * p + q * q
    lhs = b * s - 2 * p * q * a
    rhs_squared = (p * p - q * q) ** 2 * (s - a * a)
    if abs(lhs) <= _CLOSE * (b * s + 2 * p * q * a):
        return None
    if abs(lhs * lhs - rhs_squared) <= _CLOSE * max(lhs * lhs, rhs_squared):
        return None
    return lhs, rhs_squared


def _tilted_terms_exact(p: Fraction, q: Fraction, a: Fraction, b: Fraction) -> tuple[Fraction, Fraction]:
    s = p * p + q * q
    return b * s - 2 * p * q * a, (p * p - q * q) ** 2 * (s - a * a)


def canonical_units(name: str) -> str:
    """'in', 'inches', 'Inch' → 'inch'; MeshError for a unit this hub does not know."""
    canonical = _UNIT_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise MeshError(f"unknown unit '{name}': use one of {', '.join(UNITS_MM)}")
    return canonical


def rotate_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """points @ matrix.T for many points: einsum's plain loop, as BLAS matmul on tall,
    three-column arrays was measured an order of magnitude slower on busy machines."""
    return np.einsum("...j,kj->...k", points, matrix)
