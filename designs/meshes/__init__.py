"""The only package that touches trimesh: reads mesh files, measures, compares and draws them.

A pure adapter: bytes in, plain dataclasses and dicts out, no Django, no database.
The worker that calls it runs each file in a subprocess with time and memory limits;
this package adds the limits that depend on the file's content (triangle counts, ZIP
sizes) and checks them *before* allocating, so a hostile file fails fast with a
`MeshError` whose `reason` a person can act on.

Figures are computed by one vectorised code path for every format. Binary STL, the
common case, is parsed straight from the bytes with numpy; the other formats are read
through trimesh (with processing off) and handed to the same code as triangles.
Corners are merged by *exact* equality of their coordinates, which is what STL needs
and what makes the figures reproducible from the bytes alone.

By area: `base` (limits, errors, units, `is_mesh_path`, `fits`), `read` (formats and
readers), `figures` (`analyse`), `diff` (`geometric_diff`), `render` (thumbnails, viewer
triangles) and `worker` (the guarded child processes; import it as `designs.meshes.worker`).
Each output also has a `mesh_*` form taking a `Mesh` from `read_mesh`, so a file read once
serves them all.
"""

from designs.meshes.base import (
    FIGURES_VERSION,
    MATERIAL_DENSITIES_G_CM3,
    MESH_EXTENSIONS,
    UNITS_MM,
    Limits,
    MeshError,
    MeshFigures,
    canonical_units,
    figures_in_units,
    fits,
    is_mesh_path,
)
from designs.meshes.diff import geometric_diff
from designs.meshes.figures import analyse, mesh_figures
from designs.meshes.read import Mesh, fcstd_thumbnail, read_mesh
from designs.meshes.render import (
    group_colour,
    mesh_thumbnail,
    mesh_viewer_extra,
    mesh_viewer_triangles,
    render_thumbnail,
    viewer_triangles,
)

__all__ = [
    "FIGURES_VERSION",
    "MATERIAL_DENSITIES_G_CM3",
    "MESH_EXTENSIONS",
    "UNITS_MM",
    "Limits",
    "Mesh",
    "MeshError",
    "MeshFigures",
    "analyse",
    "canonical_units",
    "fcstd_thumbnail",
    "figures_in_units",
    "fits",
    "geometric_diff",
    "group_colour",
    "is_mesh_path",
    "mesh_figures",
    "mesh_thumbnail",
    "mesh_viewer_extra",
    "mesh_viewer_triangles",
    "read_mesh",
    "render_thumbnail",
    "viewer_triangles",
]
