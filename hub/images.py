"""Photos people upload (a make's photo): checked, stripped and re-encoded before they are
stored, so that what the hub keeps and serves is a plain JPEG it made itself.

A photo is refused, with a message a person can act on, when it is larger than
MAX_PHOTO_BYTES, declares more than MAX_PHOTO_PIXELS (a decompression bomb: a few KiB of
PNG can declare 30000×30000 pixels, 3.6 GB once decoded; the size is read from the header
and checked before any pixel is decoded), is not a JPEG, PNG, WebP or GIF (whatever its
name says), is damaged, or carries more than MAX_METADATA_BYTES of EXIF or EXIF that does
not parse (a JPEG may chain APP1 segments into megabytes of it).

What is kept: the pixels of the first frame, turned upright as the camera's EXIF
orientation says, at most MAX_PHOTO_SIDE pixels on the long side. Everything else goes,
EXIF with its GPS position and camera serial number first among it: a photo taken at home
would otherwise publish where the maker lives (docs/portability.md).
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from typing import IO

from django.core.files.base import ContentFile
from PIL import Image, UnidentifiedImageError

from hub.exceptions import ValidationError

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_PIXELS = 40_000_000
MAX_PHOTO_SIDE = 2048
MAX_METADATA_BYTES = 64 * 1024
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
JPEG_QUALITY = 85

ACCEPTED = "a JPEG, PNG, WebP or GIF photo"

# EXIF orientation → the turn that makes the photo upright (as ImageOps.exif_transpose,
# without writing the EXIF block back: it is dropped anyway).
ORIENTATION_TAG = 0x0112
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class CleanPhoto:
    """The re-encoded photo, ready for a FileField, and what a record says about it."""

    content: ContentFile
    sha256: str
    width: int
    height: int


def photo_clean(upload: IO[bytes], *, name: str = "photo") -> CleanPhoto:
    """The photo in `upload` as a fresh JPEG without metadata, or ValidationError."""
    data = upload.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise ValidationError(
            f"The photo is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB: "
            "export a smaller copy (a phone's 'medium' size is plenty) and send that."
        )
    if not data:
        raise ValidationError(f"The photo is empty: send {ACCEPTED}.")
    with warnings.catch_warnings():
        # Pillow only warns about a very large image; here it is refused.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _open(data, name)
            _check_metadata(image)
            upright = _decode(image)
        except ValidationError:
            raise
        except Image.DecompressionBombError:
            raise _too_many_pixels() from None
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, EOFError, struct.error) as exc:
            raise ValidationError(
                f"The photo could not be read ({type(exc).__name__}): it seems damaged. "
                f"Open it and save it again as {ACCEPTED}."
            ) from None
    encoded = io.BytesIO()
    upright.save(encoded, "JPEG", quality=JPEG_QUALITY, optimize=True)
    payload = encoded.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    return CleanPhoto(
        content=ContentFile(payload, name=f"{digest[:20]}.jpg"),
        sha256=digest,
        width=upright.width,
        height=upright.height,
    )


def _too_many_pixels() -> ValidationError:
    return ValidationError(
        f"The photo has more than {MAX_PHOTO_PIXELS // 1_000_000} megapixels: "
        f"resize it to at most {MAX_PHOTO_SIDE} pixels on its long side and send it again."
    )


def _open(data: bytes, name: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise ValidationError(
            f"{name!r} is not {ACCEPTED}; other files (SVG, HTML, PDF, HEIC) are not taken. "
            "Export the photo as a JPEG and send that."
        ) from None
    width, height = image.size
    # Read from the header: nothing has been decoded yet.
    if width <= 0 or height <= 0:
        raise ValidationError(f"The photo says it is {width}×{height} pixels, which no photo is.")
    if width * height > MAX_PHOTO_PIXELS:
        raise _too_many_pixels()
    return image


def _check_metadata(image: Image.Image) -> None:
    exif = image.info.get("exif") or b""
    if len(exif) > MAX_METADATA_BYTES:
        raise ValidationError(
            f"The photo carries {len(exif) // 1024} KiB of EXIF metadata (at most "
            f"{MAX_METADATA_BYTES // 1024} KiB is read): save it again without metadata."
        )
    if not exif:
        return
    with warnings.catch_warnings():
        # Pillow reads a damaged EXIF block with a warning ("Possibly corrupt EXIF data").
        warnings.simplefilter("error", UserWarning)
        try:
            parsed = Image.Exif()
            parsed.load(exif)
            dict(parsed)
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, UserWarning, struct.error):
            raise ValidationError(
                "The photo's EXIF metadata is damaged: save the photo again without metadata."
            ) from None


def _decode(image: Image.Image) -> Image.Image:
    image.seek(0)  # a GIF's or WebP's first frame
    if image.format == "JPEG":
        # Decode at a reduced scale when the photo is much larger than it will be kept.
        image.draft("RGB", (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))
    image.load()
    upright: Image.Image = image
    method = ORIENTATIONS.get(image.getexif().get(ORIENTATION_TAG, 1))
    if method is not None:
        upright = image.transpose(method)
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        upright = flat
    elif upright.mode != "RGB":
        upright = upright.convert("RGB")
    upright.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
    # A new image from the pixels alone: no info (EXIF, XMP, ICC, comments) rides along.
    return Image.frombytes("RGB", upright.size, upright.tobytes())
