"""Makes: "I made one" of a design at one commit, signed; on the design page, the maker's
profile and the API; private designs' makes stay private; hostile photos store nothing."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from designs import services
from designs.models import Design, Make
from hub.models import Credential
from hub.records import credential_visible
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db


def png_bytes(colour=(200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "PNG")
    return out.getvalue()


def photo(data: bytes | None = None, name: str = "make.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if data is not None else png_bytes(), content_type="image/png")


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_with_exif_chain() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20)).save(out, "JPEG")
    data = out.getvalue()
    body = b"Exif\0\0" + b"\0" * (60 * 1024)
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return data[:2] + segment * 30 + data[2:]


HOSTILE = {
    "over the byte limit": (b"\xff\xd8" + b"\0" * (10 * 1024 * 1024 + 1), "big.jpg", "larger than 10 MB"),
    "a decompression bomb": (png_declaring(30_000, 30_000), "bomb.png", "more than 40 megapixels"),
    "text renamed .jpg": (b"a shopping list\n" * 20, "list.jpg", "is not a JPEG, PNG, WebP or GIF"),
    "an HTML page": (b"<!doctype html><script>alert(1)</script>", "page.jpg", "is not a JPEG"),
    "an SVG": (
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>',
        "a.svg",
        "is not a JPEG",
    ),
    "an EXIF bomb": (jpeg_with_exif_chain(), "exif.jpg", "KiB of EXIF metadata"),
}


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="bracket", title="Bracket")
    commit_files(design, {"parts/arm.stl": "solid arm\nendsolid arm\n", "README.md": "# Bracket\n"}, "First")
    return design


@pytest.fixture
def private(alice):
    design = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(design, {"a.txt": "x"})
    return design


def head(design) -> str:
    return design.repo.branch_head("main")


def photo_files() -> list[Path]:
    root = Path(settings.DATA_DIR) / "photos"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def make_of(design, maker, **kwargs) -> Make:
    return services.make_create(design=design, maker=maker, commit_sha=head(design), **kwargs)


# -- the service --------------------------------------------------------------------------


def test_a_make_is_signed_with_the_commit_part_and_photo_digest(design, bob):
    make = make_of(design, bob, path="parts/arm.stl", photo=photo(), where="Fablab Leiden", outcome="partly")
    credential = Credential.objects.get(source=f"designs.make:{make.pk}")
    details = credential.document["credentialSubject"]["make"]
    assert credential.subject == bob and credential.kind == "make"
    assert details["commit"] == head(design) and details["path"] == "parts/arm.stl"
    assert details["design"] == "alice/bracket" and details["outcome"] == "partly"
    assert details["where"] == "Fablab Leiden" and len(details["photoSha256"]) == 64
    assert make.photo.name.endswith(".jpg") and len(photo_files()) == 1


def test_a_make_names_a_commit_of_the_design(design, bob):
    with pytest.raises(Exception, match="has no commit"):
        services.make_create(design=design, maker=bob, commit_sha="0" * 40)


def test_a_make_names_a_part_that_exists_at_that_commit(design, bob):
    with pytest.raises(Exception, match="There is no 'parts/leg.stl'"):
        make_of(design, bob, path="parts/leg.stl")


def test_nobody_makes_a_design_they_cannot_see(private, bob):
    with pytest.raises(Exception, match="No design"):
        make_of(private, bob)
    assert not Make.objects.exists()


def test_notes_and_where_are_bounded(design, bob):
    with pytest.raises(Exception, match="at most 4,000"):
        make_of(design, bob, notes="x" * 4001)
    with pytest.raises(Exception, match="at most 200"):
        make_of(design, bob, where="x" * 201)


def test_deleting_a_make_revokes_its_record_and_removes_its_photo(
    design, bob, django_capture_on_commit_callbacks
):
    make = make_of(design, bob, photo=photo())
    source = f"designs.make:{make.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        services.make_delete(make=make, actor=bob)
    assert not Make.objects.exists() and photo_files() == []
    assert Credential.objects.get(source=source).revoked_at is not None


def test_only_the_maker_deletes_a_make(design, bob, alice):
    make = make_of(design, bob)
    with pytest.raises(Exception, match="Only the person who made it"):
        services.make_delete(make=make, actor=alice)


# -- pages ----------------------------------------------------------------------------------


def test_a_signed_in_reader_adds_a_make_with_a_photo_from_the_design_page(client, design, bob):
    client.force_login(bob)
    page = client.get(reverse("design-detail", args=["alice", "bracket"])).content.decode()
    assert "I made one" in page and "Nobody has recorded a make" in page
    response = client.post(
        reverse("design-make-new", args=["alice", "bracket"]),
        {
            "version": "main",
            "path": "parts/arm.stl",
            "photo": photo(),
            "outcome": "works",
            "made_on": "2026-01-05",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    make = Make.objects.get()
    assert make.commit_sha == head(design) and make.maker == bob
    page = client.get(reverse("design-detail", args=["alice", "bracket"])).content.decode()
    assert (
        f'Version <a class="mono" href="/alice/bracket/commit/{head(design)}/">{head(design)[:10]}</a>'
        in page
    )
    assert reverse("design-make-photo", args=["alice", "bracket", make.pk]) in page
    assert f"/credentials/{Credential.objects.get().pk}.json" in page
    photo_response = client.get(reverse("design-make-photo", args=["alice", "bracket", make.pk]))
    assert photo_response["Content-Type"] == "image/jpeg"


def test_the_version_of_a_make_names_the_tag_on_its_commit(client, design, bob, alice):
    services.tag_create(design=design, user=alice, name="v1.0", target=None, notes="")
    make_of(design, bob)
    page = client.get(reverse("design-detail", args=["alice", "bracket"])).content.decode()
    assert '<span class="tag">v1.0</span>' in page


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_photo_is_a_form_error_and_stores_nothing(client, design, bob, case):
    data, name, message = HOSTILE[case]
    client.force_login(bob)
    response = client.post(
        reverse("design-make-new", args=["alice", "bracket"]),
        {"version": "main", "photo": photo(data, name), "outcome": "works", "made_on": "2026-01-05"},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Make.objects.exists() and not Credential.objects.exists() and photo_files() == []


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_photo_is_a_400_from_the_api_and_stores_nothing(design, bob, case):
    data, name, message = HOSTILE[case]
    response = client_for(bob).post(
        reverse("api-design-makes", args=["alice", "bracket"]),
        {"commit": "main", "photo": photo(data, name)},
        format="multipart",
    )
    assert response.status_code == 400, response.content[:500]
    assert message in response.json()["detail"]
    assert not Make.objects.exists() and not Credential.objects.exists() and photo_files() == []


def test_the_maker_deletes_their_make_from_the_page(client, design, bob):
    make = make_of(design, bob)
    client.force_login(bob)
    response = client.post(reverse("design-make-delete", args=["alice", "bracket", make.pk]))
    assert response.status_code == 302 and not Make.objects.exists()


def test_someone_else_cannot_delete_a_make(client, design, bob, alice):
    make = make_of(design, bob)
    client.force_login(alice)
    assert client.post(reverse("design-make-delete", args=["alice", "bracket", make.pk])).status_code == 403
    assert Make.objects.exists()


# -- profiles -------------------------------------------------------------------------------


def test_a_profile_shows_designs_forks_and_makes_with_photos(client, design, bob):
    fork = services.design_fork(design=design, user=bob)
    make = make_of(design, bob, photo=photo())
    page = client.get(reverse("profile", args=["bob"])).content.decode()
    assert f"/{fork.full_name}/" in page and "forked from" in page and 'href="/alice/bracket/"' in page
    assert reverse("design-make-photo", args=["alice", "bracket", make.pk]) in page


def test_an_unknown_person_is_a_404(client, db):
    assert client.get("/nobody-here/").status_code == 404


def test_one_segment_pages_still_win_over_profiles(client, db):
    UserFactory(username="someone")
    assert client.get("/labs/").status_code == 200
    assert client.get("/login/").status_code == 200
    assert client.get("/someone/").status_code == 200


# -- private designs ------------------------------------------------------------------------


@pytest.fixture
def private_make(private, alice):
    return make_of(private, alice, photo=photo(), notes="the secret part")


def test_makes_of_a_private_design_are_absent_from_the_profile_for_strangers(client, private_make, bob):
    assert "the secret part" not in client.get("/alice/").content.decode()
    client.force_login(bob)
    assert "the secret part" not in client.get("/alice/").content.decode()
    client.force_login(private_make.maker)
    assert "the secret part" in client.get("/alice/").content.decode()


def test_the_photo_of_a_private_make_is_a_404_for_strangers(client, private_make, bob):
    url = reverse("design-make-photo", args=["alice", "secret", private_make.pk])
    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 404


def test_the_api_hides_makes_of_a_private_design(api, private_make, bob):
    assert api.get(reverse("api-design-makes", args=["alice", "secret"])).status_code == 404
    assert api.get(reverse("api-user-makes", args=["alice"])).json()["results"] == []
    bob_api = client_for(bob)
    assert bob_api.get(reverse("api-user-makes", args=["alice"])).json()["results"] == []
    url = reverse("api-design-make", args=["alice", "secret", private_make.pk])
    assert bob_api.delete(url).status_code == 404
    assert client_for(private_make.maker).get(reverse("api-user-makes", args=["alice"])).json()["count"] == 1


def test_the_signed_record_of_a_private_make_is_visible_only_to_those_who_see_the_design(private_make, bob):
    credential = Credential.objects.get(source=f"designs.make:{private_make.pk}")
    assert not credential_visible(credential, bob)
    assert not credential_visible(credential, AnonymousUser())
    assert credential_visible(credential, private_make.maker)


# -- API ------------------------------------------------------------------------------------


def test_the_api_adds_lists_and_deletes_a_make(design, bob):
    api = client_for(bob)
    url = reverse("api-design-makes", args=["alice", "bracket"])
    response = api.post(
        url,
        {"commit": "main", "photo": photo(), "where": "home", "made_on": "2026-02-01"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["commit"] == head(design) and made["maker"] == "bob" and made["outcome"] == "works"
    assert made["credential_url"].endswith(f"/credentials/{Credential.objects.get().pk}.json")
    assert made["photo_url"].endswith(f"/alice/bracket/makes/{made['id']}/photo")
    listed = api.get(url).json()["results"]
    assert [m["id"] for m in listed] == [made["id"]]
    assert api.get(reverse("api-user-makes", args=["bob"])).json()["count"] == 1
    assert api.delete(reverse("api-design-make", args=["alice", "bracket", made["id"]])).status_code == 204
    assert not Make.objects.exists()


def test_the_api_refuses_a_make_of_a_version_that_does_not_exist(design, bob):
    response = client_for(bob).post(
        reverse("api-design-makes", args=["alice", "bracket"]), {"commit": "nope"}, format="multipart"
    )
    assert response.status_code == 404


def test_an_anonymous_request_cannot_add_a_make(api, design):
    response = api.post(
        reverse("api-design-makes", args=["alice", "bracket"]), {"commit": "main"}, format="multipart"
    )
    assert response.status_code in (401, 403)
