"""Pictures of a mesh: CPU-rendered PNG thumbnails and the triangles for the 3D viewer."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from designs.meshes.base import Limits, rotate_points
from designs.meshes.figures import mesh_figures
from designs.meshes.read import Mesh, read_mesh


def render_thumbnail(data: bytes, *, filename: str, size: int = 256, limits: Limits = Limits()) -> bytes:
    """A PNG of the part seen from the front left and above, drawn on the CPU."""
    _check_size(size)
    return mesh_thumbnail(read_mesh(data, filename=filename, units=None, limits=limits), size=size)


def mesh_thumbnail(mesh: Mesh, *, size: int = 256) -> bytes:
    """`render_thumbnail` for a mesh already read. It draws the file's own coordinates,
    so the unit the mesh was read in makes no difference."""
    _check_size(size)
    return _png(_render(mesh.corners, size))


def _check_size(size: int) -> None:
    if not 16 <= size <= 2048:
        raise ValueError("thumbnail size must be between 16 and 2048 pixels")


def viewer_triangles(
    data: bytes, *, filename: str, max_triangles: int = 400_000, limits: Limits = Limits()
) -> bytes:
    """The triangles for the browser's 3D view: float32 little-endian, 9 per triangle, mm.

    Meshes with more than `max_triangles` are simplified by vertex clustering (corners
    that fall in one cell of a grid become one corner), coarsening the grid until the
    count fits: the shape stays whole, with no holes from dropped triangles.
    """
    return mesh_viewer_triangles(
        read_mesh(data, filename=filename, units=None, limits=limits), max_triangles=max_triangles
    )


def mesh_viewer_triangles(mesh: Mesh, *, max_triangles: int = 400_000) -> bytes:
    """`viewer_triangles` for a mesh already read, in the unit its file declares or implies
    (read it with units=None). The triangles keep the file's order (simplified, the order
    of those kept): `mesh_viewer_extra` says which runs of them belong to which body or
    object."""
    group = _triangle_groups(mesh)
    corners = mesh.corners_mm()
    if len(corners) > max_triangles:
        corners, kept = _simplify(corners, max_triangles)
        if group is not None:
            group = group[kept]
    mesh.found["viewer_groups"] = group if group is not None else np.zeros(len(corners), dtype=np.int64)
    return np.ascontiguousarray(corners, dtype="<f4").tobytes()


# Colours of bodies and uncoloured objects, in the order they are listed (the pages use
# the same): the 3D view's blue-grey first, then colours told apart by most eyes.
GROUP_COLOURS = ("#8ca1bd", "#ee9a4d", "#73b380", "#bf80b8", "#d9bf59", "#66a6bf", "#b0704f", "#7f7fcc")


# Bodies coloured one by one at most; the smaller ones share the last colour group.
MAX_COLOURED_BODIES = 64


# Runs of triangles of one colour sent at most (8 bytes and one draw call each): bodies
# interleaved more finely than this in the file are drawn in one colour.
MAX_COLOUR_RUNS = 10_000


def group_colour(number: int) -> str:
    """The colour of the body or object listed as `number` (from 1)."""
    return GROUP_COLOURS[(number - 1) % len(GROUP_COLOURS)]


def _triangle_groups(mesh: Mesh) -> np.ndarray | None:
    """Each triangle's colour group: its object (when the file has objects worth telling
    apart) or its body (largest first, from mesh_figures), or None for one group."""
    if len(mesh.objects) > 1 or any(obj.colour for obj in mesh.objects):
        group = np.empty(len(mesh.corners), dtype=np.int64)
        for number, obj in enumerate(mesh.objects):
            group[obj.first : obj.first + obj.triangles] = number
        return group
    if "open_edges" not in mesh.found:
        mesh_figures(mesh)  # finds the bodies
    body = mesh.found.get("triangle_body")
    return None if body is None else np.minimum(body, MAX_COLOURED_BODIES - 1)


def mesh_viewer_extra(mesh: Mesh) -> bytes:
    """What the 3D view draws besides the triangles, little-endian: b"FHX1", then uint32
    colour groups G, runs R, open edges shown E and open edges in all; G × RGBA bytes
    (alpha 0: no colour of its own, the view's usual one); R × (uint32 triangles, uint32
    group), consecutive runs of the triangles of `mesh_viewer_triangles`; E × 6 float32,
    each open edge's two corners in mm."""
    if "viewer_groups" not in mesh.found:
        mesh_viewer_triangles(mesh)
    group = mesh.found["viewer_groups"]
    edges = mesh.found["open_edges"]
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1]))) if len(group) else group
    if len(starts) > MAX_COLOUR_RUNS:
        group, starts = np.zeros(len(group), dtype=np.int64), np.zeros(1, dtype=np.int64)
    count = int(group.max()) + 1 if len(group) else 1
    coloured = count > 1 or bool(mesh.objects and mesh.objects[0].colour)
    colours = b"".join(
        bytes.fromhex(_colour_of(mesh, number)[1:]) + (b"\xff" if coloured else b"\x00")
        for number in range(1, count + 1)
    )
    runs = np.empty((len(starts), 2), dtype="<u4")
    runs[:, 0] = np.diff(np.append(starts, len(group)))
    runs[:, 1] = group[starts]
    total = int(mesh.found.get("open_edge_count", len(edges)))
    head = b"FHX1" + struct.pack("<IIII", count, len(runs), len(edges), total)
    return head + colours + runs.tobytes() + np.ascontiguousarray(edges, dtype="<f4").tobytes()


def _colour_of(mesh: Mesh, number: int) -> str:
    """Group `number`'s colour (from 1): its object's own, or the list's."""
    given = mesh.objects[number - 1].colour if number <= len(mesh.objects) else ""
    return given or group_colour(number)


def _simplify(corners: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Fewer triangles, and which of the given ones each stands for (in order)."""
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
            centre: np.ndarray = np.stack(
                [
                    np.bincount(inverse.ravel(), weights=flat[:, axis], minlength=len(keys))
                    for axis in range(3)
                ],
                axis=1,
            )
            centre /= counts[:, None]
            return centre[inverse[whole][kept]], np.flatnonzero(whole)[kept]
        # A surface's triangle count goes with the square of the grid's resolution.
        cells = int(cells * min(0.8, 0.95 * math.sqrt(target / len(kept))))
        if cells < 16:
            break
    # Not a surface a coarser grid can simplify (a triangle soup): thin it out evenly.
    step = -(-len(corners) // target)
    return corners[::step], np.arange(0, len(corners), step)


def _first_of_each(triples: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct row of an (n, 3) int array."""
    if len(triples) == 0 or triples.max() < (1 << 21):
        packed = (triples[:, 0] << 42) | (triples[:, 1] << 21) | triples[:, 2]
        return np.sort(np.unique(packed, return_index=True)[1])
    return np.sort(np.unique(triples, axis=0, return_index=True)[1])


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
        x[:, corner], y[:, corner], z[:, corner] = rotate_points(point, view).T
    normal = np.cross(
        np.stack([x[:, 1] - x[:, 0], y[:, 1] - y[:, 0], z[:, 1] - z[:, 0]], axis=1),
        np.stack([x[:, 2] - x[:, 0], y[:, 2] - y[:, 0], z[:, 2] - z[:, 0]], axis=1),
    )
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))
    length[length == 0] = 1.0
    # The light in view coordinates (the view matrix is a rotation).
    shade = 0.28 + 0.72 * np.abs(rotate_points(normal, (view @ light)[None, :])[:, 0]) / length
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
    winner = np.zeros(width * width, dtype=np.intp)  # the triangle seen at each pixel
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
            _raster_batch(batch, x, y, z, area2, rows_from, rows_to, width, depth, winner)

    # A pixel's colour depends only on the triangle seen there: one colour per triangle
    # (and the background's last), looked up per pixel, rather than computed per pixel.
    palette = np.empty((len(corners) + 1, 3))
    palette[:-1] = shade[:, None] * _BASE_COLOUR + (1 - shade[:, None]) * 18.0
    palette[-1] = _BACKGROUND
    seen = np.where(np.isfinite(depth), winner, len(corners)).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE)
    # Each 2 x 2 block's mean, summed row by row as numpy's mean(axis=(1, 3)) sums it:
    # the same additions in the same order give the same bytes.
    first, *others = (
        np.ascontiguousarray(seen[:, row, :, column]).ravel()
        for row, column in ((0, 0), (0, 1), (1, 0), (1, 1))
    )
    # Most pixels see one triangle (or the background) in all four samples: their mean,
    # the same sum of the same colour in the same order, is worked out once per triangle.
    solid = palette + palette
    solid += palette
    solid += palette
    solid /= _SUPERSAMPLE * _SUPERSAMPLE
    image = _to_bytes(solid).take(first, axis=0)
    mixed = np.flatnonzero((first != others[0]) | (first != others[1]) | (first != others[2]))
    blend = palette.take(first[mixed], axis=0)
    for other in others:
        blend += palette.take(other[mixed], axis=0)
    blend /= _SUPERSAMPLE * _SUPERSAMPLE
    image[mixed] = _to_bytes(blend)
    return image.reshape(size, size, 3)


def _to_bytes(colours: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(colours), 0, 255).astype(np.uint8)


def _least(values: np.ndarray) -> np.ndarray:
    # Row-wise minimum of an (n, 3) array: much faster than .min(axis=1) for 3 columns.
    return np.minimum(np.minimum(values[:, 0], values[:, 1]), values[:, 2])


def _most(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(values[:, 0], values[:, 1]), values[:, 2])


def _raster_batch(tris, x, y, z, area2, rows_from, rows_to, width, depth, winner) -> None:
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
    # Depth from the triangle's plane: z = z0 + dz/dx (px - x0) + dz/dy (py - y0), with
    # what is the same along a row (all but the dz/dx term) computed once per row. The
    # operations and their order are those of the formula, so the depths are exact to it.
    x0, y0, z0 = x[tri, 0], y[tri, 0], z[tri, 0]
    ex1, ey1, ez1 = x[tri, 1] - x0, y[tri, 1] - y0, z[tri, 1] - z0
    ex2, ey2, ez2 = x[tri, 2] - x0, y[tri, 2] - y0, z[tri, 2] - z0
    dzdx = (ez1 * ey2 - ez2 * ey1) / area2[tri]
    along_y = (ex1 * ez2 - ex2 * ez1) / area2[tri] * (row + 0.5 - y0)
    first = np.cumsum(widths) - widths
    offset = np.arange(int(widths.sum())) - np.repeat(first, widths)
    fragment_depth = np.repeat(cols_from, widths) + offset + 0.5
    fragment_depth -= np.repeat(x0, widths)
    fragment_depth *= np.repeat(dzdx, widths)
    fragment_depth += np.repeat(z0, widths)
    fragment_depth += np.repeat(along_y, widths)
    pixel = np.repeat(row * width + cols_from, widths) + offset
    np.minimum.at(depth, pixel, fragment_depth)
    # The nearest fragment wins; of equally near ones, the last drawn.
    wins = fragment_depth <= depth[pixel]
    winner[pixel[wins]] = np.repeat(tri, widths)[wins]


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
