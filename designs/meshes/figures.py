"""Measuring a mesh: triangle and corner counts, bodies, edges, volume, area, mass and the
oriented bounding box, in one vectorised code path for every format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Imported with the module (it takes about 12 ms) so that the worker maps it before capping
# a child's address space, like the libraries its warm-up loads.
import manifold3d  # type: ignore[import-not-found]  # it ships no py.typed
import numpy as np

from designs.meshes.base import MATERIAL_DENSITIES_G_CM3, Limits, MeshFigures, rotate_points
from designs.meshes.read import Mesh, read_mesh

# Work is done in slices of this many triangles to keep temporary arrays small.
_CHUNK = 1 << 18


# The oriented box is searched on at most this many hull points (see _oriented_box).
_OBB_CANDIDATES = 10_000


_OBB_HULL_POINTS = 1_000


def analyse(
    data: bytes, *, filename: str, units: str | None = None, limits: Limits = Limits()
) -> MeshFigures:
    """Measure a mesh file. `units` overrides the unit the file declares or implies.

    A mesh of several bodies lists each body's figures; bodies that overlap are measured
    as their union, or the volume is marked approximate with the reason (the rules are
    `_several_bodies`').
    """
    return mesh_figures(read_mesh(data, filename=filename, units=units, limits=limits))


def mesh_figures(mesh: Mesh) -> MeshFigures:
    """`analyse` for a mesh already read (the worker reads each file once for all its
    outputs)."""
    corners = mesh.corners
    count = len(corners)
    scale = mesh.scale
    volume, area, degenerate = surface_sums(corners)
    # A fresh contiguous copy in which -0.0 became 0.0: the same coordinate, other bits.
    points = np.add(corners, 0.0, dtype=corners.dtype).reshape(count * 3, 3)
    index, unique = _merge_exact(points)
    del points
    faces = index.reshape(count, 3)
    edges = _edge_figures(faces, len(unique))
    bodies, labels = _body_labels(edges["unique_edges"], len(unique))
    duplicates = _count_duplicates(faces, len(unique))
    unique = unique.astype(np.float64) * scale
    bbox_min = unique.min(axis=0)
    bbox_max = unique.max(axis=0)
    obb, approximate = _oriented_box(unique)
    volume_mm3 = volume * scale**3
    reliable = edges["watertight"] and edges["winding_consistent"]
    mesh.found["open_edges"] = _open_edges(edges["open_edges"], unique)
    mesh.found["open_edge_count"] = len(edges["open_edges"])
    several = Bodies()
    if bodies > 1:
        several = _several_bodies(corners, scale, faces, labels, bodies, edges, unique)
        mesh.found["triangle_body"] = several.triangle_body
        if several.method in ("union", "approximate"):
            volume_mm3 = several.volume_mm3
        reliable = reliable and several.method != "approximate"
    objects = _object_figures(mesh) if _worth_listing(mesh) else []
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
        volume_method=several.method,
        volume_note=several.note,
        body_figures=several.listed,
        overlapping_bodies=several.overlaps,
        objects=objects,
    )


def _triple(values) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def surface_sums(corners: np.ndarray) -> tuple[float, float, int]:
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
    bits: np.ndarray
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
    group: np.ndarray = np.cumsum(starts, dtype=np.int32 if count < 2**31 else np.int64)
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
    keys: np.ndarray = np.empty((len(faces), 3), dtype=np.int64)
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
        # For the bodies' own figures: edges not shared by exactly two triangles, and
        # edges two triangles walk the same way.
        "bad_edges": undirected[starts[uses != 2]],
        "open_edges": undirected[starts[uses == 1]],
        "same_way_edges": undirected[same_way],
    }


def _body_labels(unique_edges: np.ndarray, vertex_count: int) -> tuple[int, np.ndarray]:
    """The number of bodies and each distinct corner's body."""
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    # The keys are sorted by their lower vertex, so they are already in CSR row order.
    low = unique_edges // vertex_count
    high = unique_edges % vertex_count
    indptr = np.zeros(vertex_count + 1, dtype=np.int64)
    np.cumsum(np.bincount(low, minlength=vertex_count), out=indptr[1:])
    graph = csr_matrix((np.ones(len(high), dtype=np.int8), high, indptr), shape=(vertex_count, vertex_count))
    count, labels = connected_components(graph, directed=True, connection="weak", return_labels=True)
    return int(count), labels


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
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
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
    turned = rotate_points(points, rotation)
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


# -- several bodies -------------------------------------------------------------------------

# Bodies listed one by one in the figures, largest first (a triangle soup has thousands).
MAX_LISTED_BODIES = 100


# Pairs of bodies whose boxes overlap, and bodies in such pairs, that are tested for shared
# space at most: past either, the volume is marked approximate rather than taking minutes.
_MAX_BOX_PAIRS = 20_000


_MAX_SOLID_BODIES = 500


# Shared space smaller than this share of the smaller body is two bodies touching (or the
# rounding of a boolean), not an overlap.
_TOUCHING = 1e-6


@dataclass
class Bodies:
    """What the bodies of a mesh of several say about its volume (see _several_bodies)."""

    method: str = "single"
    note: str = ""
    volume_mm3: float = 0.0
    listed: list[dict[str, Any]] = field(default_factory=list)
    overlaps: list[dict[str, Any]] = field(default_factory=list)
    # Each triangle's body, numbered as listed from 0 (the 3D view colours them).
    triangle_body: np.ndarray | None = None


class _Refused(Exception):
    """manifold3d would not take a body (its status, in words)."""


def _several_bodies(
    corners: np.ndarray,
    scale: float,
    faces: np.ndarray,
    labels: np.ndarray,
    count: int,
    edges: dict,
    unique_mm: np.ndarray,
) -> Bodies:
    """Each body's figures, and the volume of all of them as one part.

    Bodies whose boxes do not overlap cannot share space: their signed volumes add up
    ("sum"), and an inward-facing body inside another (a void) subtracts itself. Where
    boxes overlap, the bodies are tested for real with manifold3d: closed bodies that
    share space are measured as their union, minus the voids among them ("union"). When
    that cannot be done (a body of such a pair is open, manifold3d refuses one, or there
    are too many pairs to test) the volume is the sum, marked "approximate", with the
    reason in `note`: it may count shared space twice.
    """
    vertex_count = len(labels)
    tri_body = labels[faces[:, 0]]
    volumes, areas = _sums_by_body(corners, tri_body, count)
    volumes *= scale**3
    areas *= scale**2
    triangles = np.bincount(tri_body, minlength=count)
    bad = np.bincount(labels[edges["bad_edges"] // vertex_count], minlength=count)
    reversed_ = np.bincount(labels[edges["same_way_edges"] // vertex_count], minlength=count)
    low, high = _boxes_by_body(unique_mm, labels, count)
    closed = (bad == 0) & (reversed_ == 0)
    # Numbered as listed: the most triangles first, then by where they start in the file.
    first_triangle = np.unique(tri_body, return_index=True)[1]
    order = np.lexsort((first_triangle, -triangles))
    number = np.empty(count, dtype=np.int64)
    number[order] = np.arange(1, count + 1)
    listed = [
        {
            "number": int(number[body]),
            "triangles": int(triangles[body]),
            "volume_mm3": float(volumes[body]),
            "area_mm2": float(areas[body]),
            "bbox_min": [float(v) for v in low[body]],
            "bbox_max": [float(v) for v in high[body]],
            "size": [float(v) for v in high[body] - low[body]],
            "watertight": bool(bad[body] == 0),
            "winding_consistent": bool(reversed_[body] == 0),
        }
        for body in order[:MAX_LISTED_BODIES]
    ]
    result = Bodies(
        method="sum", volume_mm3=float(volumes.sum()), listed=listed, triangle_body=number[tri_body] - 1
    )
    pairs = _box_pairs(low, high, _MAX_BOX_PAIRS)
    if pairs is None:
        return _approximate(
            result,
            f"more than {_MAX_BOX_PAIRS:,} pairs of the {count:,} bodies have overlapping boxes, too "
            "many to test for shared space",
        )
    if len(pairs) == 0:
        return result
    open_pairs = pairs[~(closed[pairs[:, 0]] & closed[pairs[:, 1]])]
    if len(open_pairs):
        pair = sorted(open_pairs[0], key=lambda body: number[body])
        a, b = (int(number[body]) for body in pair)
        culprit = next(int(number[body]) for body in pair if not closed[body])
        others = f" (and {len(open_pairs) - 1:,} more such pairs)" if len(open_pairs) > 1 else ""
        return _approximate(
            result,
            f"bodies {a} and {b} may overlap (their boxes do){others}, but body {culprit} is not "
            "closed (it has holes, or triangles that disagree on which side is out), so the "
            "space they share cannot be measured",
        )
    involved = np.unique(pairs)
    if len(involved) > _MAX_SOLID_BODIES:
        return _approximate(
            result,
            f"{len(involved):,} bodies have overlapping boxes, more than the {_MAX_SOLID_BODIES} "
            "this hub tests for shared space",
        )
    solids = _Solids(faces, tri_body, count, unique_mm, volumes)
    try:
        overlapping = []
        for a, b in pairs:
            if volumes[a] <= 0 or volumes[b] <= 0:
                continue  # a void inside a body is not an overlap
            shared = solids.shared(int(a), int(b))
            if shared > _TOUCHING * min(volumes[a], volumes[b]):
                overlapping.append((int(a), int(b), shared))
        if not overlapping:
            return result
        volume = _union_volume(solids, pairs, overlapping, volumes, count)
    except _Refused as exc:
        body, why = exc.args
        return _approximate(
            result,
            f"bodies' boxes overlap, but manifold3d could not take body {number[body]} as a solid "
            f"({why}), so the space they share cannot be measured",
        )
    except (RuntimeError, ValueError) as exc:
        return _approximate(result, f"manifold3d could not join the overlapping bodies ({exc})"[:300])
    result.overlaps = sorted(
        (
            {"bodies": sorted([int(number[a]), int(number[b])]), "shared_mm3": float(shared)}
            for a, b, shared in overlapping
        ),
        key=lambda pair: pair["bodies"],
    )
    first = result.overlaps[0]["bodies"]
    more = f" (and {len(overlapping) - 1:,} more pairs)" if len(overlapping) > 1 else ""
    result.method = "union"
    result.volume_mm3 = volume
    result.note = (
        f"bodies {first[0]} and {first[1]} overlap{more}: the volume is their union's, the space "
        "they share counted once"
    )
    return result


# Open edges drawn by the 3D view at most (6 float32 each): a torn mesh can have millions.
MAX_SHOWN_OPEN_EDGES = 20_000


def _open_edges(once: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Edges used by one triangle only (keys as _edge_figures makes them) as (n, 2, 3)
    float32 corners in mm; an even sample of MAX_SHOWN_OPEN_EDGES when there are more."""
    if len(once) > MAX_SHOWN_OPEN_EDGES:
        once = once[:: -(-len(once) // MAX_SHOWN_OPEN_EDGES)]
    ends = np.stack([once // len(points), once % len(points)], axis=1)
    return points[ends].astype(np.float32)


def _approximate(result: Bodies, why: str) -> Bodies:
    result.method = "approximate"
    result.note = f"{why}: the volume adds the bodies up and may count shared space twice"
    return result


def _sums_by_body(corners: np.ndarray, tri_body: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed volume and area of each body, in the file's unit (surface_sums per body)."""
    volume = np.zeros(count)
    area = np.zeros(count)
    for start in range(0, len(corners), _CHUNK):
        c = corners[start : start + _CHUNK].astype(np.float64)
        bodies = tri_body[start : start + _CHUNK]
        e1 = c[:, 1] - c[:, 0]
        e2 = c[:, 2] - c[:, 0]
        cross = np.cross(e1, e2)
        volume += np.bincount(
            bodies, weights=cross[:, 0] * (c[:, 0, 0] + c[:, 1, 0] + c[:, 2, 0]), minlength=count
        )
        area += np.bincount(bodies, weights=np.sqrt(np.einsum("ij,ij->i", cross, cross)), minlength=count)
    return volume / 6.0, area / 2.0


def _boxes_by_body(points: np.ndarray, labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(labels, kind="stable")
    # Every body has at least one corner, so the runs of equal labels are the bodies in order.
    starts = np.searchsorted(labels[order], np.arange(count))
    ordered = points[order]
    return np.minimum.reduceat(ordered, starts, axis=0), np.maximum.reduceat(ordered, starts, axis=0)


def _box_pairs(low: np.ndarray, high: np.ndarray, limit: int) -> np.ndarray | None:
    """Pairs (a, b), a < b, of boxes that overlap with some volume (touching is not
    overlapping); None when more than `limit` pairs overlap along x alone."""
    order = np.argsort(low[:, 0], kind="stable")
    starts = low[order, 0]
    ends = np.searchsorted(starts, high[order, 0], side="left")
    candidates = np.maximum(ends - np.arange(len(order)) - 1, 0)
    if candidates.sum() > limit:
        return None
    first = np.repeat(np.arange(len(order)), candidates)
    offset = np.arange(int(candidates.sum())) - np.repeat(np.cumsum(candidates) - candidates, candidates)
    a, b = order[first], order[first + 1 + offset]
    overlap = np.all((low[a] < high[b]) & (low[b] < high[a]), axis=1)
    pairs = np.sort(np.stack([a[overlap], b[overlap]], axis=1), axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))] if len(pairs) else pairs.reshape(0, 2)


class _Solids:
    """Bodies as manifold3d solids, made once each; an inward-facing body (a void) is
    turned outwards, to be subtracted."""

    def __init__(
        self, faces: np.ndarray, tri_body: np.ndarray, count: int, points: np.ndarray, volumes: np.ndarray
    ) -> None:
        self.faces = faces
        self.order = np.argsort(tri_body, kind="stable")
        self.starts = np.searchsorted(tri_body[self.order], np.arange(count + 1))
        self.points = points
        self.volumes = volumes
        self.made: dict[int, Any] = {}

    def get(self, body: int):
        if body not in self.made:
            triangles = self.faces[self.order[self.starts[body] : self.starts[body + 1]]]
            corners, local = np.unique(triangles, return_inverse=True)
            local = local.reshape(-1, 3).astype(np.uint64)
            if self.volumes[body] < 0:
                local = local[:, ::-1]
            solid = manifold3d.Manifold(
                manifold3d.Mesh64(
                    vert_properties=np.ascontiguousarray(self.points[corners], dtype=np.float64),
                    tri_verts=np.ascontiguousarray(local),
                )
            )
            status = solid.status()
            if status != manifold3d.Error.NoError:
                raise _Refused(body, f"{status.name}")
            self.made[body] = solid
        return self.made[body]

    def shared(self, a: int, b: int) -> float:
        return float((self.get(a) ^ self.get(b)).volume())


def _union_volume(
    solids: _Solids,
    pairs: np.ndarray,
    overlapping: list[tuple[int, int, float]],
    volumes: np.ndarray,
    count: int,
) -> float:
    """The volume of all bodies as one part: bodies in a group of overlapping boxes that
    holds an overlap are joined (their voids subtracted), the others add up."""
    # Slow to import (scipy takes about half a second): only this path pays.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, group = connected_components(graph, directed=False)
    joined = {int(group[a]) for a, _, _ in overlapping}
    total = float(volumes[~np.isin(group, list(joined))].sum())
    shared = {(a, b): volume for a, b, volume in overlapping}
    for number in sorted(joined):
        members = np.flatnonzero(group == number)
        if len(members) == 2 and (int(members[0]), int(members[1])) in shared:
            # Two solids alone: their union is both less what they share, already measured.
            total += float(volumes[members].sum()) - shared[(int(members[0]), int(members[1]))]
            continue
        solid_parts = [solids.get(int(body)) for body in members if volumes[body] > 0]
        voids = [solids.get(int(body)) for body in members if volumes[body] < 0]

        whole = manifold3d.Manifold.batch_boolean(solid_parts, manifold3d.OpType.Add)
        if voids:
            whole = whole - manifold3d.Manifold.batch_boolean(voids, manifold3d.OpType.Add)
        total += float(whole.volume())
    return total


# -- objects of a scene file ----------------------------------------------------------------


def _worth_listing(mesh: Mesh) -> bool:
    """Objects are listed when there are several, or one the file gives a colour or material."""
    return len(mesh.objects) > 1 or any(obj.colour or obj.material for obj in mesh.objects)


def _object_figures(mesh: Mesh) -> list[dict[str, Any]]:
    """Each placed object's name, triangles, volume, area and box (after its transform), and
    its colour and material when the file gives them; the first MAX_LISTED_BODIES."""
    listed = []
    for obj in mesh.objects[:MAX_LISTED_BODIES]:
        part = mesh.corners[obj.first : obj.first + obj.triangles]
        volume, area, _ = surface_sums(part)
        points = part.reshape(-1, 3)
        low = points.min(axis=0).astype(np.float64) * mesh.scale
        high = points.max(axis=0).astype(np.float64) * mesh.scale
        listed.append(
            {
                "name": obj.name,
                "triangles": obj.triangles,
                "volume_mm3": float(volume * mesh.scale**3),
                "area_mm2": float(area * mesh.scale**2),
                "bbox_min": [float(v) for v in low],
                "bbox_max": [float(v) for v in high],
                "size": [float(v) for v in high - low],
                "colour": obj.colour,
                "material": obj.material,
            }
        )
    return listed
