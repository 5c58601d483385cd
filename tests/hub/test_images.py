"""hub.images.photo_clean: one test per hostile photo, and what a good one becomes."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from hub.exceptions import ValidationError
from hub.images import MAX_METADATA_BYTES, MAX_PHOTO_BYTES, MAX_PHOTO_SIDE, photo_clean


def png(width: int = 40, height: int = 30, colour=(200, 30, 30), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, "PNG")
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header declaring `width`×`height` pixels, with a few bytes of data:
    what a decompression bomb looks like before anything is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def exif_block(entries: dict[int, object]) -> bytes:
    exif = Image.Exif()
    for tag, value in entries.items():
        exif[tag] = value
    return exif.tobytes()


def jpeg(width: int = 60, height: int = 40, *, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (10, 120, 200))
    image.paste((250, 250, 0), (0, 0, width // 2, height // 2))  # a corner marks which way is up
    image.save(out, "JPEG", **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def with_app1_segments(data: bytes, count: int) -> bytes:
    """The JPEG with `count` more APP1 'Exif' segments of 60 KiB each after its first marker:
    Pillow chains them into one EXIF block, megabytes of it if a file says so."""
    segment_body = b"Exif\0\0" + b"\0" * (60 * 1024)
    segment = b"\xff\xe1" + struct.pack(">H", len(segment_body) + 2) + segment_body
    return data[:2] + segment * count + data[2:]


def refused(data: bytes, name: str = "photo.jpg") -> str:
    with pytest.raises(ValidationError) as caught:
        photo_clean(io.BytesIO(data), name=name)
    return caught.value.message


def test_a_photo_is_kept_as_a_jpeg_of_its_pixels():
    photo = photo_clean(io.BytesIO(png()), name="make.png")
    image = Image.open(io.BytesIO(photo.content.read()))
    assert image.format == "JPEG" and image.size == (40, 30) == (photo.width, photo.height)
    assert photo.content.name.endswith(".jpg") and len(photo.sha256) == 64


def test_a_large_photo_is_shrunk_to_the_longest_side_kept():
    photo = photo_clean(io.BytesIO(jpeg(4000, 1000)))
    assert (photo.width, photo.height) == (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE // 4)


def test_it_drops_the_exif_block_with_the_camera_s_model_and_serial_number():
    exif = Image.Exif()
    exif[0x0110] = "Phone of the maker"  # camera model
    exif[0xA431] = "SERIAL-1234"  # body serial number
    data = jpeg(exif=exif.tobytes())
    photo = photo_clean(io.BytesIO(data))
    stored = photo.content.read()
    cleaned = Image.open(io.BytesIO(stored))
    assert "exif" not in cleaned.info and not dict(cleaned.getexif())
    assert b"SERIAL-1234" not in stored and b"Phone of the maker" not in stored


def test_a_gps_position_is_not_stored():
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    data = jpeg(exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the test photo has a position"
    stored = Image.open(io.BytesIO(photo_clean(io.BytesIO(data)).content.read()))
    assert not stored.getexif().get_ifd(0x8825)


def test_a_sideways_phone_photo_is_turned_upright():
    data = jpeg(60, 40, exif=exif_block({0x0112: 6}))  # "rotate 90° clockwise to view"
    photo = photo_clean(io.BytesIO(data))
    assert (photo.width, photo.height) == (40, 60)


def test_a_gif_keeps_its_first_frame():
    out = io.BytesIO()
    frames = [Image.new("P", (20, 10), index) for index in (1, 2, 3)]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    photo = photo_clean(io.BytesIO(out.getvalue()))
    assert (photo.width, photo.height) == (20, 10)


def test_a_transparent_png_is_laid_on_white():
    photo = photo_clean(io.BytesIO(png(colour=(0, 0, 0, 0), mode="RGBA")))
    pixel = Image.open(io.BytesIO(photo.content.read())).getpixel((5, 5))
    assert all(channel > 245 for channel in pixel)


def test_it_refuses_a_file_over_the_byte_limit_before_decoding_it():
    message = refused(b"\xff\xd8" + b"\0" * (MAX_PHOTO_BYTES + 10))
    assert "larger than 10 MB" in message


def test_it_refuses_a_decompression_bomb_from_its_header():
    bomb = png_declaring(30_000, 30_000)
    assert len(bomb) < 200
    message = refused(bomb)
    assert "more than 40 megapixels" in message


def test_it_refuses_a_bomb_just_over_the_pixel_limit_too():
    assert "megapixels" in refused(png_declaring(8000, 5001))


def test_it_refuses_text_renamed_to_jpg():
    message = refused(b"just some notes, not a photo\n" * 10, name="notes.jpg")
    assert "'notes.jpg' is not a JPEG, PNG, WebP or GIF photo" in message


def test_it_refuses_an_svg():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert "is not a JPEG, PNG, WebP or GIF photo" in refused(svg, name="photo.svg")


def test_it_refuses_an_html_page():
    assert "SVG, HTML" in refused(b"<!doctype html><html><body>hi</body></html>", name="a.png")


def test_it_refuses_an_image_format_it_does_not_take():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "BMP")
    assert "is not a JPEG" in refused(out.getvalue(), name="photo.bmp")


def test_it_refuses_a_chain_of_exif_segments_megabytes_long():
    message = refused(with_app1_segments(jpeg(), 40))
    assert f"at most {MAX_METADATA_BYTES // 1024} KiB is read" in message


def test_it_refuses_exif_that_does_not_parse():
    # An IFD claiming 60,000 entries in a block that holds a few.
    broken = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 60_000) + b"\0" * 40
    assert "EXIF metadata is damaged" in refused(jpeg(exif=broken))


def test_it_refuses_a_truncated_photo():
    data = jpeg(400, 300)
    assert "seems damaged" in refused(data[: len(data) // 2])


def test_it_refuses_an_empty_file():
    assert "empty" in refused(b"")
