"""Measuring a mesh: triangle and corner counts, bodies, edges, volume, area, mass and the
oriented bounding box, in one vectorised code path for every format."""

from __future__ import annotations

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

    Volume and mass assume the triangles enclose one solid; overlapping bodies in one
    file count their shared space twice.
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
    }


def _count_bodies(unique_edges: np.ndarray, vertex_count: int) -> int:
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
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
