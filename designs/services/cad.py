"""CAD files the hub does not analyse: the thumbnail a FreeCAD document carries.

A FreeCAD document (.FCStd) is a ZIP archive with a PNG of the part in it. Its file page
shows that picture: it is taken out once per blob, checked (`meshes.fcstd_thumbnail`: the
3MF reader's zip-bomb and part-name limits, and the PNG chunk by chunk) and kept where
mesh thumbnails are, so `design-thumbnail` serves it. A document whose picture cannot be
shown keeps the reason beside it, so a hostile file is opened once, not on every view.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from designs import meshes
from designs.git import TreeEntry
from designs.models import Design
from designs.selectors import design_blob_to_file, thumbnail_path

# FreeCAD documents larger than this are not opened for their picture on a page view.
MAX_FCSTD_BYTES = 64 * 1024 * 1024


def fcstd_thumbnail_prepare(*, design: Design, entry: TreeEntry, size: int) -> str:
    """Make the thumbnail of the FreeCAD document `entry` (of `size` bytes, its LFS
    object's if it is a pointer) ready for `design-thumbnail`; '' when it is, else why it
    cannot be shown."""
    target = thumbnail_path(entry.sha)
    refused = target.with_suffix(".reason")
    if target.exists():
        return ""
    if refused.exists():
        return refused.read_text(encoding="utf-8")
    if size > MAX_FCSTD_BYTES:
        # Not remembered: a larger limit later may open it.
        return f"the document has {size:,} bytes, more than the {MAX_FCSTD_BYTES:,} opened for its thumbnail"
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "document.FCStd"
        try:
            design_blob_to_file(design, blob_sha=entry.sha, target=copy)
        except OSError:
            return "the document could not be read from the repository"
        data = copy.read_bytes()
    try:
        picture = meshes.fcstd_thumbnail(data, limits=meshes.Limits(max_bytes=MAX_FCSTD_BYTES))
    except meshes.MeshError as exc:
        _write(refused, exc.reason.encode())
        return exc.reason
    _write(target, picture)
    return ""


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Readers never see half a file; two page views racing write the same bytes.
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as out:
        out.write(content)
    Path(out.name).replace(path)
