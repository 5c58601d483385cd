"""A changed picture shows its before and after on the diff pages, served by blob sha
through the design's own access rules (issue 22: no more "size grew by 80 bytes")."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image

from designs.models import Design
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


SVG_BEFORE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
)
SVG_AFTER = SVG_BEFORE.replace(b'width="10" height="10"/>', b'width="5" height="10"/>')


@pytest.fixture
def photos(alice) -> tuple[Design, str, str]:
    design = DesignFactory(owner=alice, slug="photos")
    first = commit_files(design, {"docs/front.png": png(40, 30, (200, 0, 0)), "docs/plan.svg": SVG_BEFORE})
    second = commit_files(
        design, {"docs/front.png": png(64, 48, (0, 0, 200)), "docs/plan.svg": SVG_AFTER}, message="New photo"
    )
    return design, first, second


def picture_rows(client, design: Design, commit: str) -> dict[str, dict]:
    page = client.get(reverse("design-commit", args=[design.owner.username, design.slug, commit]))
    assert page.status_code == 200
    return {row["file"].path: row for row in page.context["files"]}, page.content.decode()


def test_a_changed_png_shows_before_and_after_with_the_three_ways_to_compare(client, photos):
    design, first, second = photos
    rows, content = picture_rows(client, design, second)

    front = rows["docs/front.png"]
    old = design.repo.entry(first, "docs/front.png").sha
    new = design.repo.entry(second, "docs/front.png").sha
    assert front["picture"] == {
        "old": reverse("design-picture", args=["alice", "photos", old, "front.png"]),
        "new": reverse("design-picture", args=["alice", "photos", new, "front.png"]),
    }
    assert f'src="{front["picture"]["old"]}"' in content and f'src="{front["picture"]["new"]}"' in content
    assert "Swipe" in content and "Onion skin" in content
    assert "grew by" not in content  # the picture says more than its size

    answer = client.get(front["picture"]["new"])
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    assert b"".join(answer.streaming_content) == design.repo.read_blob(new)


def test_an_svg_shows_its_pictures_and_its_text_diff_and_is_served_sandboxed(client, photos):
    design, _, second = photos
    rows, _ = picture_rows(client, design, second)
    plan = rows["docs/plan.svg"]
    assert plan["picture"]["old"] and plan["picture"]["new"]

    answer = client.get(plan["picture"]["new"])
    assert answer["Content-Type"].startswith("image/svg+xml")
    assert "sandbox" in answer["Content-Security-Policy"] and answer["X-Content-Type-Options"] == "nosniff"


def test_an_added_picture_has_only_its_after(client, alice):
    design = DesignFactory(owner=alice, slug="new-photo")
    commit_files(design, {"README.md": "# Hi\n"})
    second = commit_files(design, {"photo.jpg": _jpeg()}, message="Add photo")
    rows, content = picture_rows(client, design, second)
    assert rows["photo.jpg"]["picture"]["old"] == "" and rows["photo.jpg"]["picture"]["new"]
    assert "Swipe" not in content  # nothing to swipe against


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    "blob, name",
    [
        ("0" * 40, "front.png"),  # not an object of the design
        ("HEAD:" + "a" * 35, "front.png"),  # a revision expression, not a sha
        (None, "front.txt"),  # not a picture's name
    ],
)
def test_the_picture_endpoint_serves_only_blobs_of_the_design_by_a_picture_name(client, photos, blob, name):
    design, _, second = photos
    blob = blob or design.repo.entry(second, "docs/front.png").sha
    url = f"/{design.owner.username}/{design.slug}/picture/{blob}/{name}"
    assert client.get(url).status_code == 404


def test_a_tree_or_a_commit_sha_is_not_a_picture(client, photos):
    design, _, second = photos
    tree = design.repo.tree_of(second)
    for sha in (second, tree):
        assert (
            client.get(reverse("design-picture", args=["alice", "photos", sha, "x.png"])).status_code == 404
        )


def test_a_private_design_s_pictures_are_hidden_from_strangers(client, alice, bob, photos):
    design, _, second = photos
    design.visibility = Design.Visibility.PRIVATE
    design.save(update_fields=["visibility"])
    url = reverse(
        "design-picture", args=["alice", "photos", design.repo.entry(second, "docs/front.png").sha, "f.png"]
    )
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 200
