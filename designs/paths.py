"""The one gate every file name passes before it reaches a repository.

Names arrive from browsers, API clients and (later) git pushes. Anything that could
escape the repository, break a checkout on another operating system, or shadow an
existing file under a different spelling is refused with a message that names the rule.
"""

from __future__ import annotations

import mimetypes
import posixpath
import unicodedata
from collections.abc import Iterable

from hub.exceptions import ValidationError

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
# Names Windows refuses whatever the extension; a design must check out everywhere.
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}


def clean_path(raw: str) -> str:
    """Return the canonical (NFC, '/'-separated, relative) form of a file path, or raise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("A file path is required.")
    if "\x00" in raw:
        raise ValidationError("File names cannot contain a NUL byte.")
    if any("\ud800" <= ch <= "\udfff" for ch in raw):
        # Bytes that are not UTF-8, as git hands them over (kept as surrogates): the hub
        # stores, shows and serves names as text.
        shown = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ValidationError(f"File names must be UTF-8 text: '{shown}'.")
    if "\\" in raw:
        raise ValidationError(f"File names cannot contain a backslash: {raw!r}.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise ValidationError(f"File names cannot contain control characters: {raw!r}.")
    check_visible(raw, what="File names")
    if raw.startswith("/"):
        raise ValidationError(f"File paths must be relative to the design, not absolute: {raw!r}.")
    path = unicodedata.normalize("NFC", raw)
    if len(path.encode()) > MAX_PATH_BYTES:
        raise ValidationError(f"File path is longer than {MAX_PATH_BYTES} bytes.")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValidationError(
                f"File path {raw!r} has an empty, '.' or '..' component; paths must stay inside the design."
            )
        if part.lower() in (".git", ".git.") or part.lower().startswith(".git/"):
            raise ValidationError(f"File path {raw!r} uses the reserved name '.git'.")
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise ValidationError(f"The name {part[:40]!r}… is longer than {MAX_COMPONENT_BYTES} bytes.")
        if part != part.strip() or part.endswith("."):
            raise ValidationError(
                f"The name {part!r} starts or ends with a space or ends with a dot, "
                "which some systems cannot check out."
            )
        if part.split(".")[0].lower() in WINDOWS_RESERVED:
            raise ValidationError(f"The name {part!r} is reserved on Windows.")
    return path


def check_visible(name: str, *, what: str) -> None:
    """Refuse invisible and direction-changing characters (Unicode's format characters:
    bidirectional overrides and isolates, zero-width spaces and joiners, the BOM, soft
    hyphens). They make a name read as another one: "invoice\u202etxt.exe" shows as
    "invoiceexe.txt"."""
    for ch in name:
        if unicodedata.category(ch) == "Cf":
            raise ValidationError(
                f"{what} cannot contain invisible or direction-changing characters "
                f"(U+{ord(ch):04X} {unicodedata.name(ch, 'format character')}): {name!r}."
            )


def clean_dir(raw: str) -> str:
    """A folder prefix for uploads: '' for the root, else a clean relative path."""
    raw = (raw or "").strip().strip("/")
    return clean_path(raw) if raw else ""


def join(folder: str, name: str) -> str:
    return clean_path(posixpath.join(folder, name) if folder else name)


def fold(path: str) -> str:
    """The key under which two names would be the same file on macOS or Windows."""
    return unicodedata.normalize("NFC", path).casefold()


def check_no_aliases(new_paths: Iterable[str], existing_paths: Iterable[str]) -> None:
    """Refuse a name that differs from an existing one only by case or Unicode form.

    `README.md` beside `readme.md`, or a decomposed `é` beside a composed one, are two
    files to git but one to most file systems: a checkout would silently lose one.
    """
    existing = {fold(p): p for p in existing_paths}
    seen: dict[str, str] = {}
    for path in new_paths:
        key = fold(path)
        if key in existing and existing[key] != path:
            raise ValidationError(
                f"{path!r} would collide with the existing file {existing[key]!r} "
                "(names differing only by case or Unicode form are one file on many systems)."
            )
        if key in seen and seen[key] != path:
            raise ValidationError(f"{path!r} and {seen[key]!r} would be the same file.")
        seen[key] = path


EXTRA_TYPES = {
    ".stl": "model/stl",
    ".3mf": "model/3mf",
    ".obj": "model/obj",
    ".ply": "application/x-ply",
    ".step": "model/step",
    ".stp": "model/step",
    ".gcode": "text/x-gcode",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".scad": "text/plain",
    ".glb": "model/gltf-binary",
}
TEXT_AS_PLAIN = {"text/html", "application/xhtml+xml", "text/javascript", "application/javascript"}


# Files shown as pictures (browsers draw them in <img>): the design page's top picture, the
# diff pages' before and after, an OKH manifest's image.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")


def is_image_path(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def content_type_for(path: str) -> str:
    """The type a file named `path` is served and stored as; HTML and scripts as plain text."""
    lower = path.lower()
    for ext, kind in EXTRA_TYPES.items():
        if lower.endswith(ext):
            return kind
    guessed, _ = mimetypes.guess_type(path)
    if guessed in TEXT_AS_PLAIN:
        return "text/plain"
    return guessed or "application/octet-stream"
