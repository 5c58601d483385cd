"""CAD files the hub does not analyse: a FreeCAD document shows the thumbnail it carries
(checked like a 3MF archive, its PNG chunk by chunk); other CAD formats say what they are
and why they are not measured, instead of "binary file"."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest
from django.urls import reverse
from PIL import Image

from designs import selectors
from designs.meshes import Limits, MeshError, fcstd_thumbnail
from designs.models import Design
from tests.factories import DesignFactory, commit_files


def png(width: int = 32, height: int = 24) -> bytes:
    """A real PNG, drawn and encoded by Pillow."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def fcstd(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A FreeCAD document as FreeCAD writes one: a ZIP with Document.xml and a thumbnail."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        archive.writestr("Document.xml", b'<?xml version="1.0"?><Document SchemaVersion="4"/>')
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def refused(data: bytes) -> str:
    with pytest.raises(MeshError) as caught:
        fcstd_thumbnail(data)
    return caught.value.reason


# --- the thumbnail, taken out and checked ------------------------------------------------


def test_the_thumbnail_of_a_freecad_document_is_its_png():
    picture = png()
    assert fcstd_thumbnail(fcstd({"thumbnails/Thumbnail.png": picture})) == picture


def test_a_document_without_a_thumbnail_says_so():
    assert "carries no thumbnail" in refused(fcstd({"GuiDocument.xml": b"<GuiDocument/>"}))


@pytest.mark.parametrize("name", ["../thumbnails/Thumbnail.png", "/etc/passwd", "C:/evil.png", "a/../../b"])
def test_a_document_with_an_unsafe_part_name_is_refused(name):
    data = fcstd({name: b"x", "thumbnails/Thumbnail.png": png()})
    assert "unsafe name" in refused(data)


def test_a_zip_bomb_thumbnail_is_refused_before_it_is_unpacked():
    # 64 MiB of zeros squeeze to about 64 KiB: the directory says how large it would be.
    bomb = fcstd({"thumbnails/Thumbnail.png": bytes(64 * 1024 * 1024)})
    assert len(bomb) < 200_000
    assert "more than the 4,194,304 a thumbnail may take" in refused(bomb)


def test_a_highly_compressed_thumbnail_is_refused_as_a_zip_bomb():
    # Under the thumbnail's size cap but compressed far past the ratio a picture has.
    bomb = fcstd({"thumbnails/Thumbnail.png": bytes(3 * 1024 * 1024)})
    assert "looks like a zip bomb" in refused(bomb)


def test_a_thumbnail_whose_directory_lies_about_its_size_is_cut_off():
    honest = fcstd({"thumbnails/Thumbnail.png": png()}, compression=zipfile.ZIP_STORED)
    # Shrink the size the central directory declares: reading must stop there, not trust it.
    directory = honest.rindex(b"PK\x01\x02")
    lying = bytearray(honest)
    struct.pack_into("<I", lying, directory + 24, 10)
    reason = refused(bytes(lying))
    assert "unpacks to more than" in reason or "cannot be unpacked" in reason


def test_too_many_parts_are_refused():
    data = fcstd({f"part{i}": b"" for i in range(20)} | {"thumbnails/Thumbnail.png": png()})
    with pytest.raises(MeshError) as caught:
        fcstd_thumbnail(data, limits=Limits(max_archive_members=10))
    assert "more than the 10 allowed" in caught.value.reason


def with_declared_parts(data: bytes, count: int) -> bytes:
    """The archive with its end-of-directory record declaring `count` parts."""
    patched = bytearray(data)
    struct.pack_into("<HH", patched, data.rindex(b"PK\x05\x06") + 8, count, count)
    return bytes(patched)


def with_zip64_parts(data: bytes, count: int) -> bytes:
    """The archive ending as a ZIP64 one does, its ZIP64 record declaring `count` parts."""
    end = data.rindex(b"PK\x05\x06")
    size, offset = struct.unpack_from("<LL", data, end + 12)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    last = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:end] + record + locator + last


def forbid_zipfile(monkeypatch) -> None:
    """From here on, zipfile reading a directory fails the test: zipfile builds an object
    per entry before any check can run (700,000 empty entries took it 10 s and 390 MB)."""

    def construct(*args, **kwargs):
        raise AssertionError("zipfile.ZipFile was constructed")

    monkeypatch.setattr(zipfile, "ZipFile", construct)


def test_a_document_declaring_too_many_parts_is_refused_before_zipfile_reads_it(monkeypatch):
    data = with_declared_parts(fcstd({"thumbnails/Thumbnail.png": png()}), 60_000)
    forbid_zipfile(monkeypatch)
    assert refused(data) == "the FreeCAD document archive has 60,000 parts, more than the 10,000 allowed"


def test_a_zip64_document_declaring_too_many_parts_is_refused_before_zipfile_reads_it(monkeypatch):
    data = with_zip64_parts(fcstd({"thumbnails/Thumbnail.png": png()}), 700_000)
    assert zipfile.ZipFile(io.BytesIO(data)).namelist()  # a ZIP64 ending zipfile reads
    forbid_zipfile(monkeypatch)
    assert refused(data) == "the FreeCAD document archive has 700,000 parts, more than the 10,000 allowed"


def test_a_document_with_more_parts_than_its_directory_declares_is_refused_before_zipfile_reads_it(
    monkeypatch,
):
    data = with_declared_parts(
        fcstd({f"part{i}": b"" for i in range(20)} | {"thumbnails/Thumbnail.png": png()}), 3
    )
    forbid_zipfile(monkeypatch)
    with pytest.raises(MeshError) as caught:
        fcstd_thumbnail(data, limits=Limits(max_archive_members=10))
    assert caught.value.reason == "the FreeCAD document archive has more than the 10 parts allowed"


def test_a_jpeg_thumbnail_is_refused():
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG")
    assert "is a JPEG image, not a PNG" in refused(fcstd({"thumbnails/Thumbnail.png": out.getvalue()}))


def test_a_thumbnail_of_random_bytes_is_refused():
    assert "not a PNG image" in refused(fcstd({"thumbnails/Thumbnail.png": b"<html>hello</html>"}))


def test_a_png_with_a_wrong_checksum_is_refused():
    picture = bytearray(png())
    picture[-20] ^= 0xFF  # inside the image data, before its checksum and the end chunk
    assert "checksum is wrong" in refused(fcstd({"thumbnails/Thumbnail.png": bytes(picture)}))


def test_a_png_cut_short_is_refused():
    picture = png()
    assert "PNG" in refused(fcstd({"thumbnails/Thumbnail.png": picture[: len(picture) // 2]}))


def test_a_png_announcing_a_huge_picture_is_refused():
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    picture = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    assert "100,000 × 100,000 pixels" in refused(fcstd({"thumbnails/Thumbnail.png": picture}))


def test_bytes_that_are_not_a_zip_are_refused():
    assert "is a PNG image, not a FreeCAD document" in refused(png())
    assert "an .FCStd file is a ZIP archive" in refused(b"FreeCAD nonsense")
    assert "not a readable ZIP archive" in refused(b"PK\x03\x04 truncated")


# --- on the file page ----------------------------------------------------------------------


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    def commit(design: Design, files: dict[str, bytes]) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            commit_files(design, files, message="Add CAD files")

    return commit


@pytest.fixture
def cad(alice, commit):
    design = DesignFactory(owner=alice, slug="cad", title="CAD sources")
    commit(
        design,
        {
            "bracket.FCStd": fcstd({"thumbnails/Thumbnail.png": png(64, 48)}),
            "hostile.FCStd": fcstd({"../escape.txt": b"x", "thumbnails/Thumbnail.png": png()}),
            "jpeg.fcstd": fcstd({"thumbnails/Thumbnail.png": b"\xff\xd8\xff\xe0 not really"}),
            "body.f3d": b"PK\x03\x04" + bytes(range(256)) * 8,
            "part.SLDPRT": bytes(range(256)) * 8,
            "holder.scad": b"difference() { cube(20); translate([5, 5, 5]) cube(10); }\n",
            "panel.igs": b"\x00\x01binary iges-ish" * 40,
        },
    )
    return Design.objects.get(pk=design.pk)


def page(client, design: Design, path: str) -> str:
    response = client.get(reverse("design-blob", args=[design.owner.username, design.slug, path]))
    assert response.status_code == 200
    return response.content.decode()


def thumbnail_url(design: Design, path: str) -> str:
    sha = selectors.design_file(design, rev=None, path=path)[1].sha
    return reverse("design-thumbnail", args=[design.owner.username, design.slug, sha])


def test_a_freecad_document_shows_the_thumbnail_it_carries(client, cad):
    html = page(client, cad, "bracket.FCStd")
    assert "FreeCAD document" in html
    assert "not analysed: FreeCAD document (only its thumbnail is shown)" in html
    assert "is a binary file" not in html
    url = thumbnail_url(cad, "bracket.FCStd")
    assert f'src="{url}"' in html
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    served = b"".join(response.streaming_content)
    assert served == png(64, 48)
    assert Image.open(io.BytesIO(served)).size == (64, 48)


def test_the_file_list_shows_a_freecad_document_s_thumbnail_once_taken_out(client, cad):
    page(client, cad, "bracket.FCStd")
    listing = client.get(reverse("design-detail", args=[cad.owner.username, cad.slug])).content.decode()
    assert thumbnail_url(cad, "bracket.FCStd") in listing


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("hostile.FCStd", "unsafe name: &#x27;../escape.txt&#x27;"),
        ("jpeg.fcstd", "is a JPEG image, not a PNG"),
    ],
)
def test_a_hostile_freecad_document_fails_cleanly_with_the_reason(client, cad, path, why):
    for _ in range(2):  # the second view reads the reason kept from the first
        html = page(client, cad, path)
        assert "not analysed: FreeCAD document" in html
        assert "Its thumbnail cannot be shown:" in html and why in html
    assert client.get(thumbnail_url(cad, path)).status_code == 404


@pytest.mark.parametrize(
    ("path", "label", "why"),
    [
        ("body.f3d", "Autodesk Fusion archive", "a Fusion archive only Fusion opens"),
        ("part.SLDPRT", "SolidWorks part", "a closed format only SolidWorks reads"),
        ("panel.igs", "IGES exchange file", "IGES is not read by this hub"),
    ],
)
def test_other_cad_files_say_what_they_are_and_why_they_are_not_analysed(client, cad, path, label, why):
    html = page(client, cad, path)
    assert label in html
    assert f"not analysed: {why}" in html
    assert "is a binary file" not in html
    assert "Download" in html


def test_an_openscad_program_is_labelled_and_its_source_still_shown(client, cad):
    html = page(client, cad, "holder.scad")
    assert "OpenSCAD program" in html and "not analysed: a program that makes geometry" in html
    assert "difference() { cube(20);" in html


def test_other_binary_files_are_still_binary_files(client, cad, commit):
    commit(cad, {"firmware.hex.bin": bytes(range(256)) * 4})
    html = page(client, Design.objects.get(pk=cad.pk), "firmware.hex.bin")
    assert "is a binary file" in html and "not analysed" not in html
