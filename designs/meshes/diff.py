"""How a part changed between two files: surface sampling, alignment (right-angle turns
then ICP), distances and the regions that moved."""

from __future__ import annotations

import math
import time

import numpy as np

from designs.meshes.base import Limits, require_finite, rotate_points
from designs.meshes.figures import surface_sums
from designs.meshes.read import Mesh, read_mesh

# Seconds a diff may spend refining its distances by the exact distance to triangles.
TIME_BUDGET_S = 5.0


def geometric_diff(
    old: bytes,
    new: bytes,
    *,
    old_name: str,
    new_name: str,
    samples: int = 20_000,
    time_budget_s: float = TIME_BUDGET_S,
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
    before = read_mesh(old, filename=old_name, units=None, limits=limits)
    after = read_mesh(new, filename=new_name, units=None, limits=limits)
    return mesh_geometric_diff(
        before,
        after,
        old_name=old_name,
        new_name=new_name,
        samples=samples,
        time_budget_s=time_budget_s - (time.perf_counter() - started),
        identical=old == new,
    )


def mesh_geometric_diff(
    before: Mesh,
    after: Mesh,
    *,
    old_name: str,
    new_name: str,
    samples: int = 20_000,
    time_budget_s: float = TIME_BUDGET_S,
    identical: bool = False,
) -> dict:
    """`geometric_diff` for meshes already read (a STEP file's tessellation, say);
    `identical`: the caller knows both came from the same bytes."""
    started = time.perf_counter()
    old_c = before.corners_mm()
    new_c = after.corners_mm()
    old_m = _measure(old_c)
    new_m = _measure(new_c)
    # Overflowing areas would make the surface sampling's weights NaN.
    require_finite(old_m, what=f"A measure of {old_name}")
    require_finite(new_m, what=f"A measure of {new_name}")
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
    if identical or (old_c.shape == new_c.shape and np.array_equal(old_c, new_c)):
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

    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
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
        turned = rotate_points(old_pts, rotation) + shift
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
            old_c = rotate_points(old_c, rotation) + shift
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
    require_finite(result, what="A distance between the two versions")
    return result


def _measure(corners: np.ndarray) -> dict:
    volume, area, _ = surface_sums(corners)
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
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
    import trimesh
    from scipy.spatial import cKDTree

    k = min(8, len(other_points))
    distance, nearest_samples = cKDTree(other_points).query(points, k=k)
    distance = np.asarray(distance).reshape(len(points), k)[:, 0]
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
    assert best is not None  # there are always right-angle starts to try
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
        moved = rotate_points(points, rotation) + shift
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
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
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
