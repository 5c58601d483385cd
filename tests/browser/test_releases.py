"""A person makes a release with Markdown notes, attaches a file to it in the browser, sees
the notes rendered and the file on the release page and on the design page, and
downloads it."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from designs import services
from designs.services import releases
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

NOTES = "## What changed\n\n- **Stronger** arm\n- Fits `M3` screws"
GUIDE = b"Print the arm at 0.2 mm, 4 walls.\n"


def test_a_release_with_notes_and_a_file_shows_on_its_page_and_the_design_page(page, log_in, alice, tmp_path):
    design = DesignFactory(owner=alice, slug="bracket", title="Bracket")
    commit_files(design, {"README.md": "# Bracket\n", "parts/arm.stl": "solid arm\nendsolid arm\n"})
    guide = tmp_path / "print-guide.txt"
    guide.write_bytes(GUIDE)

    log_in("alice")
    page.goto("/alice/bracket/")
    page.click("nav.tabs >> text=Releases")
    page.fill("input[name=name]", "v1.0")
    page.fill("textarea[name=notes]", NOTES)
    page.click("button:has-text('Create release')")

    expect(page).to_have_url("/alice/bracket/releases/v1.0/")
    notes = page.locator(".notes.markdown")
    expect(notes.locator("h2")).to_have_text("What changed")
    expect(notes.locator("strong")).to_have_text("Stronger")
    expect(notes.locator("code")).to_have_text("M3")
    expect(notes).not_to_contain_text("**")

    page.set_input_files("input[name=file]", str(guide))
    page.click("button:has-text('Attach')")
    row = page.locator("table.release-files tr", has_text="print-guide.txt")
    expect(row).to_contain_text("34\xa0bytes")
    expect(row).to_contain_text(hashlib.sha256(GUIDE).hexdigest())
    expect(page.locator("a[type='application/toml']")).to_have_attribute(
        "href", "/alice/bracket/releases/v1.0/okh.toml"
    )

    page.goto("/alice/bracket/")
    latest = page.locator(".latest-release")
    expect(latest).to_contain_text("v1.0")
    link = latest.locator("a", has_text="print-guide.txt")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "print-guide.txt"
    assert open(download.path(), "rb").read() == GUIDE


def test_the_release_pages_do_not_scroll_sideways_on_a_390_px_phone(page, log_in, alice):
    design = DesignFactory(owner=alice, slug="bracket", title="Bracket")
    commit_files(design, {"README.md": "# Bracket\n"})
    services.tag_create(design=design, user=alice, name="v1.0", target="main", notes=NOTES)
    with SimpleUploadedFile("a-print-ready-plate-with-a-rather-long-name.3mf", GUIDE) as upload:
        releases.release_asset_upload(
            design=design,
            user=alice,
            tag="v1.0",
            name=upload.name,
            content=upload,
            content_type="model/3mf",
            size=len(GUIDE),
        )
    page.set_viewport_size({"width": 390, "height": 844})
    log_in("alice")
    for url in ("/alice/bracket/releases/", "/alice/bracket/releases/v1.0/", "/alice/bracket/"):
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{url} is {width} px wide"
