"""Reading mesh files: format detection, the numpy STL readers (binary and ASCII), trimesh
for the other formats, and the 3MF archive checks, all before anything large is allocated."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from xml.etree import ElementTree

import numpy as np

from designs.meshes.base import MESH_EXTENSIONS, UNITS_MM, Limits, MeshError, canonical_units, rotate_points

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


# A ZIP member smaller than this cannot be a bomb, whatever its ratio.
_RATIO_FLOOR_BYTES = 1 << 20


@dataclass(frozen=True)
class MeshObject:
    """One placed object of a scene file (a 3MF build item or component, an OBJ group):
    its triangles are corners[first : first + triangles], already transformed."""

    name: str
    first: int
    triangles: int
    colour: str = ""  # "#rrggbb" from the file (3MF base material or colour group), or ""
    material: str = ""  # the 3MF base material's name, or ""


@dataclass
class Mesh:
    corners: np.ndarray  # (n, 3, 3) float32 or float64, finite, in the file's unit
    format: str
    units: str
    units_source: str
    # The placed objects of a scene file, in the order of their triangles; empty for STL.
    objects: list[MeshObject] = field(default_factory=list)
    # What mesh_figures found that the 3D view reuses (each triangle's body, the open
    # edges), so a file read once is taken apart once.
    found: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def scale(self) -> float:
        return UNITS_MM[self.units]

    def corners_mm(self) -> np.ndarray:
        corners = np.asarray(self.corners, dtype=np.float64)
        return corners * self.scale if self.scale != 1.0 else corners


def read_mesh(data: bytes, *, filename: str, units: str | None, limits: Limits) -> Mesh:
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
    objects: list[MeshObject] = []
    if suffix == ".stl":
        corners, fmt = _read_stl(data, limits)
        declared, source = "mm", "assumed"
    else:
        corners, declared, source, objects = _read_with_trimesh(data, suffix, limits)
        fmt = suffix[1:]
    if len(corners) == 0:
        raise MeshError("the file contains no triangles")
    if given is not None:
        declared, source = given, "given"
    return Mesh(corners=corners, format=fmt, units=declared, units_source=source, objects=objects)


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


def _read_with_trimesh(
    data: bytes, suffix: str, limits: Limits
) -> tuple[np.ndarray, str, str, list[MeshObject]]:
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
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
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
    looks = _3mf_looks(payload) if suffix == ".3mf" else {}
    corners, objects = _scene_corners(scene, limits, fmt, looks)
    if suffix == ".3mf":
        declared = scene.metadata.get("units") or "millimeter"
        try:
            return corners, canonical_units(declared), "declared", objects
        except MeshError:
            raise MeshError(f"the 3MF declares an unknown unit '{declared}'") from None
    if suffix == ".glb":
        # glTF is in metres with Y up; printers and every other format here are Z up.
        turned = np.empty_like(corners)
        turned[..., 0] = corners[..., 0]
        turned[..., 1] = -corners[..., 2]
        turned[..., 2] = corners[..., 1]
        return turned, "m", "format", objects
    return corners, "mm", "assumed", objects


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


def _scene_corners(
    scene, limits: Limits, fmt: str, looks: dict[str, tuple[str, str]]
) -> tuple[np.ndarray, list[MeshObject]]:
    """Every placed instance's triangles, transformed, and where each instance's start.
    `looks` maps a geometry's name to its (colour, material) from the file."""
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
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
        instances.append((str(node), str(name), geometry, np.asarray(transform, dtype=np.float64)))
    parts = []
    objects = []
    first = 0
    for node, name, geometry, transform in instances:
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        faces = np.asarray(geometry.faces, dtype=np.int64)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise MeshError(f"could not read {fmt}: faces are not triangles")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise MeshError(f"could not read {fmt}: a face refers to a vertex the file does not have")
        rotation = transform[:3, :3]
        if not np.allclose(transform, np.eye(4)):
            vertices = rotate_points(vertices, rotation) + transform[:3, 3]
        if np.linalg.det(rotation) < 0:
            # A mirrored instance: keep its normals pointing outwards.
            faces = faces[:, ::-1]
        parts.append(vertices[faces])
        colour, material = looks.get(name, ("", ""))
        objects.append(MeshObject(node, first, len(faces), colour, material))
        first += len(faces)
    corners = np.concatenate(parts) if parts else np.empty((0, 3, 3))
    _check_finite(corners)
    return corners, objects


_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?")


def _3mf_looks(payload: bytes) -> dict[str, tuple[str, str]]:
    """(colour, material name) of each object of the 3MF's main model that names a base
    material or a colour group (its pid and pindex), by the name trimesh gives the object's
    geometry. Per-triangle colours are not read: an object gets the one it declares."""
    archive = zipfile.ZipFile(io.BytesIO(payload))
    main = next(
        info for info in archive.infolist() if info.filename.lower().lstrip("/") == "3d/3dmodel.model"
    )
    content = archive.read(main)
    if b"basematerials" not in content and b"colorgroup" not in content:
        return {}
    # Slow to import (trimesh and scipy take about half a second each): only this path pays.
    from trimesh.util import unique_name

    groups: dict[str, list[tuple[str, str]]] = {}
    declared: list[tuple[str, str, str]] = []  # (geometry name, pid, pindex) in file order
    names: set[str] = set()
    counts: dict[str | None, int] = {}
    # The parts were refused if they declared a DOCTYPE or entities: nothing is expanded.
    for _, element in ElementTree.iterparse(io.BytesIO(content), events=("end",)):
        local = element.tag.rpartition("}")[2]
        if local == "object":
            name = unique_name(element.get("name", element.get("id")), names, counts)
            names.add(name)
            declared.append((name, element.get("pid") or "", element.get("pindex") or "0"))
            element.clear()  # its mesh is not needed here
        elif local in ("basematerials", "colorgroup"):
            colour_key = "displaycolor" if local == "basematerials" else "color"
            groups[element.get("id") or ""] = [
                (_colour(child.get(colour_key) or ""), child.get("name") or "") for child in element
            ]
            element.clear()
    looks = {}
    for name, pid, pindex in declared:
        members = groups.get(pid, [])
        index = int(pindex) if pindex.isdigit() else 0
        if index < len(members):
            looks[name] = members[index]
    return looks


def _colour(value: str) -> str:
    """'#RRGGBB' or '#RRGGBBAA' as '#rrggbb'; '' for anything else."""
    return value[:7].lower() if _HEX_COLOUR.fullmatch(value.strip()) else ""


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
    _check_zip_parts(data, most=limits.max_archive_members, kind="3MF")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise MeshError(f"this 3MF is not a readable ZIP archive ({exc})") from None
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


_END_OF_DIRECTORY = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END_OF_DIRECTORY = struct.Struct("<4sQ2H2L4Q")
_DIRECTORY_ENTRY_BYTES = 46  # before its name, extra field and comment


def _check_zip_parts(data: bytes, *, most: int, kind: str) -> None:
    """Refuse a ZIP with more than `most` parts before zipfile reads it: zipfile builds an
    object per directory entry before anything can be checked (700,000 empty entries took
    it 10 s and 390 MB). The end records' count is checked, then the directory's entries
    are counted where zipfile finds them, as the count can lie; what does not parse is
    left to zipfile to report."""
    end = data.rfind(b"PK\x05\x06", max(len(data) - _END_OF_DIRECTORY.size - 0xFFFF, 0))
    if end < 0 or end + _END_OF_DIRECTORY.size > len(data):
        return
    *_, count, size, _, _ = _END_OF_DIRECTORY.unpack_from(data, end)
    locator = end - _ZIP64_LOCATOR.size
    if locator >= 0 and data.startswith(b"PK\x06\x07", locator):
        # zipfile takes the ZIP64 record just before its locator, whatever the locator says.
        end = locator - _ZIP64_END_OF_DIRECTORY.size
        if end < 0 or not data.startswith(b"PK\x06\x06", end):
            return
        *_, count, size, _ = _ZIP64_END_OF_DIRECTORY.unpack_from(data, end)
    if count > most:
        raise MeshError(f"the {kind} archive has {count:,} parts, more than the {most:,} allowed")
    at, parts = end - size, 0
    while 0 <= at and at + _DIRECTORY_ENTRY_BYTES <= end and data.startswith(b"PK\x01\x02", at):
        parts += 1
        if parts > most:
            raise MeshError(f"the {kind} archive has more than the {most:,} parts allowed")
        name, extra, comment = struct.unpack_from("<3H", data, at + 28)
        at += _DIRECTORY_ENTRY_BYTES + name + extra + comment


def _count_triangle_elements(content: bytes) -> int:
    # bytes.count runs at memory speed and keeps nothing; "<m:triangle" and the like
    # are caught by the ":triangle" forms.
    return sum(
        content.count(opening + space)
        for opening in (b"<triangle", b":triangle")
        for space in (b" ", b"\t", b"\n", b"\r", b"/")
    )


def _check_member_name(name: str, *, kind: str = "3MF") -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name) or "\0" in name:
        raise MeshError(f"the {kind} archive contains a part with an unsafe name: '{name}'")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, *, kind: str = "3MF") -> bytes:
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
                        f"the {kind} part '{info.filename}' unpacks to more than the {limit:,} bytes it may take"
                    )
                pieces.append(piece)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise MeshError(f"the {kind} part '{info.filename}' cannot be unpacked ({exc})") from None
    return b"".join(pieces)


# -- FreeCAD documents: only their thumbnail ------------------------------------------------

# What a FreeCAD document's picture may take: FreeCAD writes 128 × 128 px by default.
MAX_THUMBNAIL_BYTES = 4 * 1024 * 1024


MAX_THUMBNAIL_PIXELS = 4096


_FCSTD_THUMBNAIL = "thumbnails/thumbnail.png"


def fcstd_thumbnail(data: bytes, *, limits: Limits = Limits()) -> bytes:
    """The PNG a FreeCAD document (.FCStd, a ZIP archive) carries as
    thumbnails/Thumbnail.png, checked: the archive's size, part count, part names and
    compression as for a 3MF, the picture's size, and every PNG chunk (signature, CRC,
    a header first with sane dimensions, image data, an end). MeshError says why not."""
    kind = "FreeCAD document"
    if len(data) > limits.max_bytes:
        raise MeshError(
            f"the file has {len(data):,} bytes, more than the {limits.max_bytes:,} this hub opens"
        )
    if not data.startswith(b"PK"):
        what = _foreign(data)
        raise MeshError(
            f"this is {what}, not a FreeCAD document"
            if what
            else "this is not a FreeCAD document: an .FCStd file is a ZIP archive"
        )
    _check_zip_parts(data, most=limits.max_archive_members, kind=kind)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise MeshError(f"this FreeCAD document is not a readable ZIP archive ({exc})") from None
    for info in members:
        _check_member_name(info.filename, kind=kind)
    found = [info for info in members if info.filename.lower() == _FCSTD_THUMBNAIL]
    if not found:
        raise MeshError("this FreeCAD document carries no thumbnail (thumbnails/Thumbnail.png)")
    info = found[0]
    if info.flag_bits & 0x1:
        raise MeshError(f"the {kind} part '{info.filename}' is encrypted")
    if info.file_size > MAX_THUMBNAIL_BYTES:
        raise MeshError(
            f"its thumbnail would unpack to {info.file_size:,} bytes, more than the "
            f"{MAX_THUMBNAIL_BYTES:,} a thumbnail may take"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR_BYTES and ratio > limits.max_compression_ratio:
        raise MeshError(
            f"the {kind} part '{info.filename}' is compressed {ratio:,.0f} to 1, more than the "
            f"{limits.max_compression_ratio:,.0f} to 1 this hub accepts: it looks like a zip bomb"
        )
    picture = _read_member(archive, info, MAX_THUMBNAIL_BYTES, kind=kind)
    check_png(picture)
    return picture


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(data: bytes) -> None:
    """Refuse bytes that are not one whole PNG: the signature, then chunks whose lengths
    fit and whose CRCs match, IHDR first (1 to MAX_THUMBNAIL_PIXELS a side, a valid bit
    depth and colour type), at least one IDAT, IEND last and nothing after it."""
    if not data.startswith(_PNG_SIGNATURE):
        what = _foreign(data)
        raise MeshError(f"its thumbnail is {what}, not a PNG" if what else "its thumbnail is not a PNG image")
    at = len(_PNG_SIGNATURE)
    kinds: list[bytes] = []
    while at < len(data):
        if at + 12 > len(data):
            raise MeshError("its thumbnail PNG is cut short")
        (length,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(data) or not kind.isalpha():
            raise MeshError("its thumbnail PNG is cut short or corrupt")
        body = data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack_from(">I", data, at + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise MeshError(
                f"its thumbnail PNG is corrupt (the {kind.decode('ascii')} chunk's checksum is wrong)"
            )
        if not kinds:
            _check_png_header(kind, body)
        kinds.append(kind)
        at = end
        if kind == b"IEND":
            break
    if at != len(data) or not kinds or kinds[-1] != b"IEND" or b"IDAT" not in kinds:
        raise MeshError("its thumbnail PNG is incomplete (no image data, or no end)")


# Valid (colour type: bit depths) pairs of the PNG specification.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _check_png_header(kind: bytes, body: bytes) -> None:
    if kind != b"IHDR" or len(body) != 13:
        raise MeshError("its thumbnail PNG does not start with an image header")
    width, height, depth, colour = struct.unpack_from(">IIBB", body)
    if not (1 <= width <= MAX_THUMBNAIL_PIXELS and 1 <= height <= MAX_THUMBNAIL_PIXELS):
        raise MeshError(
            f"its thumbnail is {width:,} × {height:,} pixels, more than the {MAX_THUMBNAIL_PIXELS} a side shown"
        )
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise MeshError("its thumbnail PNG has an invalid colour type or bit depth")
