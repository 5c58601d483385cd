"""STEP files (ISO 10303-21, .step/.stp): exact figures from the B-rep with OpenCASCADE, and
a tessellation into the same corners array the mesh code uses, so that thumbnails, the 3D
view and geometric diffs work on STEP unchanged.

OpenCASCADE parses and transfers with recursive C++ code: a self-referencing entity
crashes the process (seen), and a very deep chain of references can overflow its stack.
Such files are refused here first, from a scan of the references that runs in numpy over
the bytes; the size and entity counts are bounded before OpenCASCADE sees anything. What OpenCASCADE prints
goes to standard output: the worker keeps that off its result channel.

OpenCASCADE (the `OCP` package) takes about a second and half a gigabyte of address space
to import, so it is imported inside the functions: only processes that read STEP pay it.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from designs.meshes.base import (
    MATERIAL_DENSITIES_G_CM3,
    Limits,
    MeshError,
    MeshFigures,
    canonical_units,
    require_finite,
)
from designs.meshes.figures import surface_sums
from designs.meshes.read import Mesh, read_mesh

# STEP text costs OpenCASCADE far more memory per byte than a mesh costs numpy (about
# 0.4 GB per 10 MB of entities): files past this are refused before parsing.
MAX_STEP_BYTES = 64 * 1024**2
MAX_ENTITIES = 3_000_000
# The corpus' parts nest 12 or 13 levels (product → shape → solid → shell → face → loop →
# edge → vertex → point), an assembly a few more per level. OpenCASCADE resolves and
# transfers references recursively: a reference to itself crashed its reader here; how
# deep a chain its stack survives was not measured, so deeper ones are refused.
MAX_DEPTH = 400
# Faces as placed (an assembly places one part's faces once per instance): a file of a
# few bytes could otherwise place the same part 2^40 times.
MAX_PLACED_FACES = 1_000_000
# The tessellation's largest distance to the exact surface, as a share of the bounding
# box's diagonal, and its largest angle between neighbouring normals: about 0.1 mm on a
# 10 cm part, round holes in 16 or more sides, and a few thousand triangles a part.
DEFLECTION_SHARE = 1e-3
ANGULAR_DEFLECTION_RAD = 0.4

_FOREIGN_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (a compressed STEP, .stpZ, is not read: unpack it)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "a program"),
    (b"glTF", "a glTF binary (.glb)"),
    (b"solid", "an ASCII STL"),
)

# Strings ('it''s') and comments (/* */) may hold '#' that is not a reference. Possessive
# loops and an end of file accepted in place of the closing mark keep the scan linear
# whatever the input (an unclosed comment runs to the end).
_STRING_OR_COMMENT = re.compile(rb"'(?:[^']++|'')*+(?:'|\Z)|/\*(?:[^*]++|\*(?!/))*+(?:\*/|\Z)")

_OCCT_UNITS = {"millimetre": "mm", "centimetre": "cm", "metre": "m", "micron": "micron"}


@dataclass
class StepPart:
    """A STEP file read once: its figures (the dict the mesh figures make, with STEP's own
    keys added) and its tessellation, in millimetres, for pictures and diffs."""

    figures: dict[str, Any]
    mesh: Mesh


def analyse_step(data: bytes, *, filename: str, limits: Limits = Limits()) -> dict[str, Any]:
    return read_step(data, filename=filename, limits=limits).figures


def read_step(data: bytes, *, filename: str, limits: Limits = Limits()) -> StepPart:
    """Read, measure and tessellate a STEP file; MeshError with a reason if it cannot be."""
    check_step_bytes(data, limits=limits)
    shape, units, units_source = _transfer(data)
    return _part(shape, units, units_source, limits)


def check_step_bytes(data: bytes, *, limits: Limits = Limits()) -> None:
    """Refuse, with a reason, what must never reach OpenCASCADE: no STEP at all, a file cut
    short, too large, too many entities, an entity defined twice, references in a loop or
    nested too deep."""
    if len(data) == 0:
        raise MeshError("the file is empty")
    most = min(limits.max_bytes, MAX_STEP_BYTES)
    if len(data) > most:
        raise MeshError(
            f"the file has {len(data):,} bytes, more than the {most:,} this hub analyses for STEP"
        )
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"ISO-10303-21;"):
        for signature, what in _FOREIGN_SIGNATURES:
            if head.startswith(signature):
                raise MeshError(f"this is {what}, not a STEP file")
        raise MeshError("this is not a STEP file: a STEP file starts with 'ISO-10303-21;'")
    if b"END-ISO-10303-21;" not in data[-4096:]:
        raise MeshError(
            "the file does not end with 'END-ISO-10303-21;': it was cut short (or has something after its end)"
        )
    _check_references(_STRING_OR_COMMENT.sub(b"''", data))


def _check_references(text: bytes) -> None:
    """Find every entity's references (#12 = A(#3, #4) refers to #3 and #4) and peel the
    graph from its leaves: what never peels is a loop; more rounds than MAX_DEPTH is a
    chain too deep. Vectorised per round, and only the bytes just after each '#' are
    looked at, so a 60 MB file takes about a second and a few hundred MB."""
    buf = np.frombuffer(text + b";" * _WINDOW, dtype=np.uint8)
    hashes = np.flatnonzero(buf == ord("#"))
    if len(hashes) == 0:
        return
    # The up-to-15 digits after each '#', and the first byte that is no digit.
    window = buf[hashes[:, None] + np.arange(1, _WINDOW + 1)]
    is_digit = (window >= ord("0")) & (window <= ord("9"))
    lengths = np.argmin(is_digit, axis=1)
    if is_digit.all(axis=1).any():
        raise MeshError(
            "the file names an entity with a number of more than 15 digits: it is not a valid STEP file"
        )
    numbered = lengths > 0
    hashes, window, lengths = hashes[numbered], window[numbered], lengths[numbered]
    ids = np.zeros(len(hashes), dtype=np.int64)
    for place in range(int(lengths.max()) if len(lengths) else 0):
        has = lengths > place
        ids[has] = ids[has] * 10 + (window[has, place] - ord("0"))
    del window
    defines = _followed_by_equals(buf, hashes + 1 + lengths)
    count = int(defines.sum())
    if count > MAX_ENTITIES:
        raise MeshError(f"the file has {count:,} entities, more than the {MAX_ENTITIES:,} this hub analyses")
    if count == 0:
        return
    # Each reference belongs to the entity defined last before it.
    owner = np.cumsum(defines) - 1
    refs = ~defines & (owner >= 0)
    defined = ids[defines]
    order = np.argsort(defined, kind="stable")
    sorted_ids = defined[order]
    # References resolve to one of the definitions only: a loop through another would be missed.
    twice = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if len(twice):
        raise MeshError(f"entity #{twice[0]} is defined more than once: the file is corrupt")
    target_ids = ids[refs]
    where = np.minimum(np.searchsorted(sorted_ids, target_ids), count - 1)
    known = sorted_ids[where] == target_ids  # a reference to nothing is OpenCASCADE's to report
    _peel(owner[refs][known], order[where[known]], count, defined)


_WINDOW = 16


def _followed_by_equals(buf: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether the first byte other than blank space from each position on is '='."""
    window = buf[ends[:, None] + np.arange(_WINDOW)]
    blank = np.isin(window, np.frombuffer(b" \t\r\n", dtype=np.uint8))
    first = np.argmin(blank, axis=1)
    equals = window[np.arange(len(ends)), first] == ord("=")
    # More blank space than the window holds: rare, looked at one by one (each scan stops
    # at its run's end, so together they read each byte once).
    text = buf.tobytes() if blank.all(axis=1).any() else b""
    for row in np.flatnonzero(blank.all(axis=1)):
        equals[row] = _BLANKS_THEN_EQUALS.match(text, int(ends[row])) is not None
    return equals


_BLANKS_THEN_EQUALS = re.compile(rb"[ \t\r\n]*+=")


def _peel(sources: np.ndarray, targets: np.ndarray, count: int, names: np.ndarray) -> None:
    remaining = np.bincount(sources, minlength=count)  # references not yet peeled
    by_target = np.argsort(targets, kind="stable")
    referrers = sources[by_target]
    starts = np.searchsorted(targets[by_target], np.arange(count + 1))
    frontier = np.flatnonzero(remaining == 0)
    peeled = len(frontier)
    depth = 0
    while len(frontier):
        depth += 1
        if depth > MAX_DEPTH:
            raise MeshError(
                f"the file's entities refer to each other more than {MAX_DEPTH} levels deep: "
                "no real part nests so deep, and reading it could crash the reader"
            )
        lo, hi = starts[frontier], starts[frontier + 1]
        sizes = hi - lo
        total = int(sizes.sum())
        if total == 0:
            break
        offsets = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(total)
        waiting, uses = np.unique(referrers[offsets], return_counts=True)
        remaining[waiting] -= uses
        frontier = waiting[remaining[waiting] == 0]
        peeled += len(frontier)
    if peeled < count:
        raise MeshError(_loop_reason(sources, targets, remaining, names))


def _loop_reason(sources: np.ndarray, targets: np.ndarray, remaining: np.ndarray, names: np.ndarray) -> str:
    """Name the entities of one loop: from any entity left, follow references to entities
    also left until one comes back (each has one, or it would have peeled)."""
    left = remaining > 0
    inside = left[sources] & left[targets]
    following = dict(zip(sources[inside].tolist(), targets[inside].tolist(), strict=True))
    seen: dict[int, int] = {}
    node = int(np.flatnonzero(left)[0])
    while node not in seen:
        seen[node] = len(seen)
        node = following[node]
    loop = [n for n, _ in sorted(seen.items(), key=lambda item: item[1])][seen[node] :]
    if len(loop) == 1:
        return f"entity #{names[loop[0]]} refers to itself: the file is corrupt"
    shown = " → ".join(f"#{names[n]}" for n in loop[:6])
    path = f"{shown} → #{names[loop[0]]}" if len(loop) <= 6 else f"{shown} → … ({len(loop)} entities)"
    return f"the file's entities refer to each other in a loop ({path}): the file is corrupt"


def _transfer(data: bytes) -> tuple[Any, str, str]:
    """The file's shape in millimetres (OpenCASCADE converts from the file's unit), and that
    unit with where it came from."""
    from OCP.IFSelect import IFSelect_RetDone
    from OCP.OCP.collections import Sequence_TCollection_AsciiString
    from OCP.STEPControl import STEPControl_Reader

    handle, name = tempfile.mkstemp(suffix=".step", prefix="fabhub-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        reader = STEPControl_Reader()
        status = reader.ReadFile(name)
    finally:
        os.unlink(name)
    if status != IFSelect_RetDone:
        raise MeshError("the STEP file could not be parsed: its text is malformed")
    lengths, angles, solid_angles = (Sequence_TCollection_AsciiString() for _ in range(3))
    reader.FileUnits(lengths, angles, solid_angles)
    declared = [lengths.Value(n).ToCString() for n in range(1, lengths.Length() + 1)]
    units, units_source = _file_units(declared)
    if reader.NbRootsForTransfer() == 0:
        raise MeshError("the STEP file holds no shape (no product or shape representation to read)")
    reader.TransferRoots()
    shape = reader.OneShape()
    if shape.IsNull():
        raise MeshError("the STEP file holds no shape OpenCASCADE could build")
    return shape, units, units_source


def _file_units(declared: list[str]) -> tuple[str, str]:
    if not declared:
        return "mm", "assumed"
    name = declared[0].strip().lower()
    try:
        return _OCCT_UNITS.get(name) or canonical_units(name), "declared"
    except MeshError:
        # OpenCASCADE converted it anyway: the figures stay right, only the name is lost.
        return "mm", "assumed"


def _part(shape: Any, units: str, units_source: str, limits: Limits) -> StepPart:
    from OCP.Bnd import Bnd_Box
    from OCP.BRepBndLib import BRepBndLib
    from OCP.BRepMesh import BRepMesh_IncrementalMesh
    from OCP.TopAbs import TopAbs_FACE, TopAbs_SHELL

    faces = _count(shape, TopAbs_FACE, most=MAX_PLACED_FACES)
    if faces > MAX_PLACED_FACES:
        raise MeshError(f"the file places more than {MAX_PLACED_FACES:,} faces, the most this hub analyses")
    solids = _solid_volumes(shape)
    if not solids:
        what = "surfaces only" if faces else "no surfaces either (points or curves only)"
        raise MeshError(f"the STEP file holds no solid, {what}: there is no volume to measure")
    box = Bnd_Box()
    # Exact: the optimal box of the surfaces themselves, not of their control points
    # (BRepBndLib.Add's box can be millimetres larger on curved parts).
    BRepBndLib.AddOptimal_s(shape, box, False, False)
    if box.IsVoid():
        raise MeshError("the STEP file's solids have no extent")
    low, high = box.CornerMin(), box.CornerMax()
    bbox_min = (low.X(), low.Y(), low.Z())
    bbox_max = (high.X(), high.Y(), high.Z())
    size = [b - a for a, b in zip(bbox_min, bbox_max, strict=True)]
    diagonal = math.hypot(*size)
    if not math.isfinite(diagonal) or diagonal <= 0:
        raise MeshError("the STEP file's solids have no extent")
    volume = sum(solids)
    deflection = diagonal * DEFLECTION_SHARE
    BRepMesh_IncrementalMesh(shape, deflection, False, ANGULAR_DEFLECTION_RAD, False)
    mesh = _tessellation(shape, units_source, limits)
    edges = _edge_uses(shape)
    # What the 3D view would otherwise take from mesh_figures on the tessellation, where
    # seams between faces can leave corners unmerged: the B-rep's own answer (no open
    # edges drawn for a closed solid; one colour per solid).
    mesh.found["open_edges"] = np.empty((0, 2, 3), dtype=np.float32)
    mesh.found["open_edge_count"] = edges["boundary"]
    if len(solids) > 1:
        body = _triangle_solids(shape, len(mesh.corners))
        if body is not None:
            mesh.found["triangle_body"] = body
    closed = _shells_closed(shape) and edges["boundary"] == 0 and edges["non_manifold"] == 0
    oriented = all(v > 0 for v in solids)
    figures = MeshFigures(
        format="step",
        units=units,
        units_source=units_source,
        triangles=len(mesh.corners),
        vertices=_distinct_corners(mesh.corners),
        bodies=len(solids),
        bbox_min=bbox_min,
        bbox_max=bbox_max,
        size=(size[0], size[1], size[2]),
        obb_size=_oriented_size(mesh.corners, deflection, size),
        obb_approximate=True,
        volume_mm3=volume,
        area_mm2=_area(shape),
        watertight=closed,
        winding_consistent=oriented,
        degenerate_faces=surface_sums(mesh.corners)[2],
        duplicate_faces=0,
        non_manifold_edges=edges["non_manifold"],
        boundary_edges=edges["boundary"],
        mass_g={
            material: round(abs(volume) / 1000.0 * density, 3)
            for material, density in MATERIAL_DENSITIES_G_CM3.items()
        },
        mass_reliable=closed and oriented,
    ).to_dict()
    figures.update(
        solids=len(solids),
        shells=_count(shape, TopAbs_SHELL),
        faces=faces,
        exact=True,
        deflection_mm=deflection,
    )
    if len(solids) > 1 and "volume_method" in figures:
        figures.update(
            volume_method="sum",
            volume_note=f"the {len(solids)} solids' volumes are added: space two solids share counts twice",
        )
    require_finite(figures, what="A figure of this STEP file")
    return StepPart(figures=figures, mesh=mesh)


def _solid_volumes(shape: Any) -> list[float]:
    """Each solid's volume, in mm³: negative for a solid turned inside out."""
    from OCP.BRepGProp import BRepGProp
    from OCP.GProp import GProp_GProps
    from OCP.TopAbs import TopAbs_SOLID
    from OCP.TopExp import TopExp_Explorer

    volumes = []
    explorer = TopExp_Explorer(shape, TopAbs_SOLID)
    while explorer.More():
        props = GProp_GProps()
        BRepGProp.VolumeProperties_s(explorer.Current(), props)
        volumes.append(props.Mass())
        explorer.Next()
    return volumes


def _area(shape: Any) -> float:
    from OCP.BRepGProp import BRepGProp
    from OCP.GProp import GProp_GProps

    props = GProp_GProps()
    BRepGProp.SurfaceProperties_s(shape, props)
    return props.Mass()


def _shells_closed(shape: Any) -> bool:
    from OCP.BRep import BRep_Tool
    from OCP.TopAbs import TopAbs_SHELL
    from OCP.TopExp import TopExp_Explorer

    explorer = TopExp_Explorer(shape, TopAbs_SHELL)
    while explorer.More():
        if not BRep_Tool.IsClosed_s(explorer.Current()):
            return False
        explorer.Next()
    return True


def _edge_uses(shape: Any) -> dict[str, int]:
    """Edges of the B-rep bounding one face only (holes; a seam, which bounds its face on
    both sides, and a degenerate edge at a pole are not) and edges shared by more than two."""
    from OCP.BRep import BRep_Tool
    from OCP.OCP.collections import IndexedDataMap_TopoDS_Shape_List_TopoDS_Shape_TopTools_ShapeMapHasher
    from OCP.TopAbs import TopAbs_EDGE, TopAbs_FACE
    from OCP.TopExp import TopExp
    from OCP.TopoDS import TopoDS

    uses = IndexedDataMap_TopoDS_Shape_List_TopoDS_Shape_TopTools_ShapeMapHasher()
    TopExp.MapShapesAndUniqueAncestors_s(shape, TopAbs_EDGE, TopAbs_FACE, uses)
    boundary = non_manifold = 0
    for index in range(1, uses.Extent() + 1):
        edge = TopoDS.Edge(uses.FindKey(index))
        faces = uses.FindFromIndex(index)
        count = faces.Size()
        if count > 2:
            non_manifold += 1
        elif count == 1 and not BRep_Tool.Degenerated_s(edge):
            if not BRep_Tool.IsClosed_s(edge, TopoDS.Face(faces.First())):
                boundary += 1
    return {"boundary": boundary, "non_manifold": non_manifold}


def _count(shape: Any, kind: Any, *, most: int | None = None) -> int:
    """Sub-shapes of a kind as placed, stopping past `most`."""
    from OCP.TopExp import TopExp_Explorer

    explorer = TopExp_Explorer(shape, kind)
    found = 0
    while explorer.More():
        found += 1
        if most is not None and found > most:
            break
        explorer.Next()
    return found


def _distinct_corners(corners: np.ndarray) -> int:
    flat = np.ascontiguousarray(corners).reshape(-1, 3)
    return len(np.unique(flat.view(np.dtype((np.void, flat.dtype.itemsize * 3)))))


def _oriented_size(corners: np.ndarray, deflection: float, size: list[float]) -> tuple[float, float, float]:
    """A near-minimal oriented box, largest extent first, for a part that lies on the bed
    on one of its sides: for each axis standing up, the smallest rectangle around the
    footprint of the tessellation's corners (rotating calipers on their convex hull),
    grown by the deflection on each side (the exact surface may bulge that far past its
    triangles), times the exact height; the exact axis-aligned box when none is smaller.
    Enclosing, so a fit check never passes a part that does not fit. Plain numpy, as
    loading trimesh for its oriented box took longer than analysing most parts."""
    points = np.asarray(corners, dtype=np.float64).reshape(-1, 3)
    best = sorted(size, reverse=True)
    for up in range(3):
        footprint = points[:, [axis for axis in range(3) if axis != up]]
        width, length = _smallest_rectangle(_hull_2d(footprint))
        box = sorted((width + 2 * deflection, length + 2 * deflection, size[up]), reverse=True)
        if math.prod(box) < math.prod(best):
            best = box
    return (best[0], best[1], best[2])


def _hull_2d(points: np.ndarray) -> np.ndarray:
    """The convex hull's corners in counter-clockwise order, by quickhull: each step keeps
    the points outside one hull edge found so far (a numpy filter) and splits that edge at
    the farthest of them, so the work goes with the hull's size, not the part's."""
    left, right = points[points[:, 0].argmin()], points[points[:, 0].argmax()]
    corners = [left, right]
    pending = [(points, left, right), (points, right, left)]
    while pending:
        candidates, a, b = pending.pop()
        outside = (b[0] - a[0]) * (candidates[:, 1] - a[1]) - (b[1] - a[1]) * (candidates[:, 0] - a[0])
        keep = outside > 1e-12 * (1.0 + float(np.abs(outside).max(initial=0.0)))
        if not keep.any():
            continue
        candidates, outside = candidates[keep], outside[keep]
        far = candidates[outside.argmax()]
        corners.append(far)
        pending += [(candidates, a, far), (candidates, far, b)]
    hull = np.unique(np.asarray(corners, dtype=np.float64), axis=0)
    centre = hull.mean(axis=0)
    return hull[np.argsort(np.arctan2(hull[:, 1] - centre[1], hull[:, 0] - centre[0]))]


def _smallest_rectangle(hull: np.ndarray) -> tuple[float, float]:
    """The sides of the smallest-area rectangle around a convex polygon: one of its sides
    lies along an edge of the polygon, so each edge's direction is tried."""
    if len(hull) < 3:
        spans = hull.max(axis=0) - hull.min(axis=0) if len(hull) else np.zeros(2)
        return float(spans[0]), float(spans[1])
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2))
    best = (math.inf, 0.0, 0.0)
    for start in range(0, len(angles), 256):
        chunk = angles[start : start + 256]
        cos, sin = np.cos(chunk)[:, None], np.sin(chunk)[:, None]
        along = hull[:, 0] * cos + hull[:, 1] * sin
        across = hull[:, 1] * cos - hull[:, 0] * sin
        widths = along.max(axis=1) - along.min(axis=1)
        lengths = across.max(axis=1) - across.min(axis=1)
        at = int(np.argmin(widths * lengths))
        if widths[at] * lengths[at] < best[0]:
            best = (float(widths[at] * lengths[at]), float(widths[at]), float(lengths[at]))
    return best[1], best[2]


def _tessellation(shape: Any, units_source: str, limits: Limits) -> Mesh:
    """The triangles OpenCASCADE made, as a Mesh in millimetres: written as a binary STL
    by OpenCASCADE's own writer (each face turned the way its orientation says) and read
    by the mesh reader, which checks the count and that every coordinate is finite."""
    from OCP.StlAPI import StlAPI_Writer

    triangles = _placed_triangles(shape)
    if triangles > limits.max_triangles:
        raise MeshError(
            f"the tessellation has {triangles:,} triangles, more than the {limits.max_triangles:,} "
            "this hub analyses"
        )
    if triangles == 0:
        raise MeshError("OpenCASCADE could not tessellate any face of this STEP file")
    handle, name = tempfile.mkstemp(suffix=".stl", prefix="fabhub-")
    os.close(handle)
    try:
        writer = StlAPI_Writer()
        writer.ASCIIMode = False
        if not writer.Write(shape, name):
            raise MeshError("OpenCASCADE could not write this STEP file's tessellation")
        data = Path(name).read_bytes()
    finally:
        os.unlink(name)
    mesh = read_mesh(data, filename="tessellation.stl", units="mm", limits=limits)
    # The reader keeps the exact float32 bits of the STL; the mesh code takes them as they are.
    return replace(mesh, format="step", units="mm", units_source=units_source)


def _triangle_solids(shape: Any, triangles: int) -> np.ndarray | None:
    """Each triangle's solid, in the order OpenCASCADE's STL writer writes them (faces
    as the explorer meets them, solid after solid); None when faces lie outside solids."""
    from OCP.TopAbs import TopAbs_SOLID
    from OCP.TopExp import TopExp_Explorer

    counts = []
    explorer = TopExp_Explorer(shape, TopAbs_SOLID)
    while explorer.More():
        counts.append(_placed_triangles(explorer.Current()))
        explorer.Next()
    if sum(counts) != triangles:
        return None
    return np.repeat(np.arange(len(counts)), counts)


def _placed_triangles(shape: Any) -> int:
    from OCP.BRep import BRep_Tool
    from OCP.TopAbs import TopAbs_FACE
    from OCP.TopExp import TopExp_Explorer
    from OCP.TopLoc import TopLoc_Location
    from OCP.TopoDS import TopoDS

    explorer = TopExp_Explorer(shape, TopAbs_FACE)
    total = 0
    while explorer.More():
        triangulation = BRep_Tool.Triangulation_s(TopoDS.Face(explorer.Current()), TopLoc_Location())
        if triangulation is not None:
            total += triangulation.NbTriangles()
        explorer.Next()
    return total


# A point alone: reading it sets up OpenCASCADE's STEP tables (schemas, units, messages)
# once, before the worker forks its children.
_WARM_UP_STEP = b"""ISO-10303-21;
HEADER;
FILE_DESCRIPTION(('warm-up'),'2;1');
FILE_NAME('warm-up.step','2026-01-01T00:00:00',(''),(''),'','','');
FILE_SCHEMA(('AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }'));
ENDSEC;
DATA;
#1=CARTESIAN_POINT('',(0.,0.,0.));
ENDSEC;
END-ISO-10303-21;
"""


def load_opencascade() -> None:
    """Import the OpenCASCADE modules the analysis uses (the worker measures what that maps)."""
    import OCP.Bnd  # noqa: F401
    import OCP.BRep  # noqa: F401
    import OCP.BRepBndLib  # noqa: F401
    import OCP.BRepGProp  # noqa: F401
    import OCP.BRepMesh  # noqa: F401
    import OCP.BRepPrimAPI  # noqa: F401
    import OCP.STEPControl  # noqa: F401
    import OCP.StlAPI  # noqa: F401


def warm_up() -> StepPart:
    """Run every step once on a box (and read a STEP text), so that a process that forks
    children has OpenCASCADE loaded and set up for all of them; the box, for the caller
    to warm up the drawing code with."""
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox

    check_step_bytes(_WARM_UP_STEP)
    try:
        _transfer(_WARM_UP_STEP)
    except MeshError:
        pass  # a point has no shape: the reader is set up all the same
    return _part(BRepPrimAPI_MakeBox(10.0, 20.0, 30.0).Shape(), "mm", "declared", Limits())
