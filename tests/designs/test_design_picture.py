"""The picture at the top of the design page: the README's first image of the design's own,
else a cover/main/photo image at the root, else the 3D thumbnail of the main part."""

from __future__ import annotations

import re
from pathlib import Path

from tests.factories import DesignFactory, commit_files

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
CORPUS = Path("/work/shared/corpus/meshes/prusa-i3")


def picture(client, path: str = "/alice/clamp/") -> str | None:
    page = client.get(path).content.decode()
    found = re.search(r'<figure class="design-picture"><img src="([^"]+)" alt="([^"]*)"', page)
    return found and found.group(1)


def test_the_readmes_first_image_is_the_picture(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(
        design,
        {
            "README.md": "# Clamp\n\n![The clamp & its screw](docs/clamp.png)\n",
            "docs/clamp.png": PNG,
            "cover.png": PNG,
        },
    )

    url = picture(client)

    assert url is not None and url.startswith("/alice/clamp/raw/docs/clamp.png"), url
    assert 'alt="The clamp &amp; its screw"' in client.get("/alice/clamp/").content.decode()


def test_an_image_from_elsewhere_in_the_readme_is_not_the_picture(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"README.md": "![x](https://tracker.example/pixel.png)\n", "photo.jpg": PNG})

    assert picture(client).startswith("/alice/clamp/raw/photo.jpg")


def test_a_cover_image_at_the_root_is_the_picture_without_a_readme_image(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"README.md": "# Clamp\n", "Cover.PNG": PNG, "parts/photo.png": PNG})

    assert picture(client).startswith("/alice/clamp/raw/Cover.PNG?ref=")


def test_the_main_parts_thumbnail_is_the_picture_otherwise(client, alice, django_capture_on_commit_callbacks):
    design = DesignFactory(owner=alice, slug="clamp")
    # The analysis that renders the thumbnail and sets the cover runs after the commit.
    with django_capture_on_commit_callbacks(execute=True):
        commit_files(design, {"knob.stl": (CORPUS / "LCD-knob.stl").read_bytes()})

    url = picture(client)

    assert url is not None and re.fullmatch(r"/alice/clamp/thumbnail/[0-9a-f]{40}\.png", url), url
    assert client.get(url).status_code == 200


def test_a_design_without_any_picture_shows_none(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"notes.txt": "nothing to see\n"})

    assert picture(client) is None
