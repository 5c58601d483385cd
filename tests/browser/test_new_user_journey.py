"""What a new user does: create a design, upload versions, read the diff, get forked."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def ascii_stl(height: float) -> bytes:
    """A valid ASCII STL: a right tetrahedron whose apex sits at `height`."""
    a, b, c, d = (0, 0, 0), (10, 0, 0), (0, 10, 0), (0, 0, height)
    facets = [
        ((0, 0, -1), (a, c, b)),
        ((0, -1, 0), (a, b, d)),
        ((-1, 0, 0), (a, d, c)),
        ((1, 1, 1), (b, c, d)),
    ]
    lines = ["solid bracket"]
    for normal, vertices in facets:
        lines.append("  facet normal {} {} {}".format(*normal))
        lines.append("    outer loop")
        lines += ["      vertex {} {} {}".format(*v) for v in vertices]
        lines.append("    endloop")
        lines.append("  endfacet")
    lines.append("endsolid bracket")
    return ("\n".join(lines) + "\n").encode()


README = b"# Tiny bracket\n\nA **small** bracket for 20 mm extrusions.\n"


def upload(page, files: dict[str, bytes], message: str) -> None:
    page.click("a:has-text('Upload')")
    page.set_input_files(
        "input[name=files]",
        files=[
            {"name": name, "mimeType": "application/octet-stream", "buffer": data}
            for name, data in files.items()
        ],
    )
    page.fill("textarea[name=message]", message)
    page.click("button:has-text('Commit files')")
    expect(page.locator(".message.success")).to_contain_text("Committed")


def test_a_new_user_creates_uploads_compares_and_is_forked(page, log_in, alice, bob):
    log_in("alice")

    page.click("header >> text=New design")
    page.fill("input[name=slug]", "tiny-bracket")
    page.fill("input[name=title]", "Tiny bracket")
    page.fill("textarea[name=summary]", "Holds a shelf.")
    page.select_option("select[name=licence]", "CERN-OHL-P-2.0")
    page.fill("input[name=tags]", "bracket, printed")
    page.click("button:has-text('Create design')")
    expect(page).to_have_url(re.compile(r"/alice/tiny-bracket/$"))
    expect(page.locator(".empty-state")).to_contain_text("no files yet")

    upload(page, {"bracket.stl": ascii_stl(10), "README.md": README}, "First version")
    expect(page.locator("table.files")).to_contain_text("bracket.stl")
    expect(page.locator(".markdown strong")).to_have_text("small")

    upload(page, {"bracket.stl": ascii_stl(14)}, "Taller bracket")

    page.click("nav.tabs >> text=History")
    commits = page.locator("li.commit")
    expect(commits).to_have_count(2)
    expect(commits.first).to_contain_text("Taller bracket")
    expect(commits.nth(1)).to_contain_text("First version")

    commits.first.locator("a.summary-text").click()
    expect(page.locator(".diff")).to_have_count(1)
    expect(page.locator(".diff .file-head")).to_contain_text("bracket.stl")
    expect(page.locator(".diff .file-head")).to_contain_text("modified")

    page.click("nav.tabs >> text=Compare")
    page.fill("input[name=base]", "main~1")
    page.fill("input[name=head]", "main")
    page.click("button:has-text('Compare')")
    expect(page.locator(".compare-summary")).to_contain_text("Changes from")
    expect(page.locator(".diff .file-head")).to_contain_text("bracket.stl")

    page.click("header >> text=Log out")
    expect(page.locator("header")).to_contain_text("Log in")

    log_in("bob")
    page.goto("/alice/tiny-bracket/")
    page.click("button:has-text('Fork')")
    expect(page).to_have_url(re.compile(r"/bob/tiny-bracket/$"))
    expect(page.locator(".forked-from")).to_contain_text("Forked from alice/tiny-bracket")
    page.click(".forked-from a")
    expect(page).to_have_url(re.compile(r"/alice/tiny-bracket/$"))
