"""A person records a make with a photo from a design's page; it shows on the design's
version and on their profile, with its photo."""

from __future__ import annotations

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser


# The image's width once it has loaded (or failed): an <img> just put in the page may still
# be loading when the test looks, which is no fault of the page.
LOADED_WIDTH = """img => img.complete ? img.naturalWidth : new Promise(done => {
    img.addEventListener("load", () => done(img.naturalWidth), {once: true});
    img.addEventListener("error", () => done(0), {once: true});
})"""


def test_a_make_with_a_photo_appears_on_the_design_s_version_and_the_profile(
    page, log_in, alice, bob, tmp_path
):
    design = DesignFactory(owner=alice, slug="bracket", title="Bracket")
    sha = commit_files(design, {"parts/arm.stl": "solid arm\nendsolid arm\n"}, "First")
    photo = tmp_path / "my-bracket.png"
    Image.new("RGB", (320, 240), (30, 140, 60)).save(photo, "PNG")

    log_in("bob")
    page.goto("/alice/bracket/")
    page.click("#makes >> text=I made one")
    expect(page.locator("input[name=version]")).to_have_value(sha)
    page.fill("input[name=path]", "parts/arm.stl")
    page.set_input_files("input[name=photo]", str(photo))
    page.fill("input[name=where]", "Fablab Leiden")
    page.fill("textarea[name=notes]", "Printed in PETG, 0.2 mm layers.")
    page.click("button:has-text('Record my make')")

    version = page.locator("#makes h3.make-version")
    expect(version).to_contain_text(sha[:10])
    card = page.locator("#makes .make-card")
    expect(card).to_contain_text("bob")
    expect(card).to_contain_text("Fablab Leiden")
    expect(card).to_contain_text("parts/arm.stl")
    image = card.locator(".make-photo img")
    image.wait_for()
    assert image.evaluate(LOADED_WIDTH) == 320
    expect(card.locator("text=Signed record")).to_be_visible()

    page.click("header .who")
    expect(page.locator("h1")).to_have_text("bob")
    profile_card = page.locator("#makes .make-card")
    expect(profile_card).to_contain_text("alice/bracket")
    assert profile_card.locator(".make-photo img").evaluate(LOADED_WIDTH) == 320
