"""A changed picture on a commit page in a real Chromium: side by side with each side's
size, then swipe and onion skin, and back, without a stale view left behind."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def test_a_changed_picture_compares_side_by_side_by_swipe_and_onion_skin(page, alice):
    design = DesignFactory(owner=alice, slug="photos")
    commit_files(design, {"front.png": png(40, 30, (200, 0, 0))})
    second = commit_files(design, {"front.png": png(64, 48, (0, 0, 200))}, message="New photo")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"/alice/photos/commit/{second}/")

    box = page.locator("[data-picture-diff]")
    expect(box.locator(".picture-old [data-picture-size]")).to_have_text("40 × 30 px")
    expect(box.locator(".picture-new [data-picture-size]")).to_have_text("64 × 48 px")
    over = box.locator(".picture-over")

    box.get_by_role("button", name="Swipe").click()
    expect(box.locator(".picture-stack")).to_be_visible()
    expect(box.locator(".picture-sides")).to_be_hidden()
    box.locator("[data-picture-slider]").fill("30")
    assert over.evaluate("e => e.style.clipPath") == "inset(0px 0px 0px 30%)"

    box.get_by_role("button", name="Onion skin").click()
    box.locator("[data-picture-slider]").fill("25")
    # The swipe's clip is gone: the onion skin shows the whole after, faded.
    assert over.evaluate("e => [e.style.clipPath, e.style.opacity]") == ["", "0.25"]

    box.get_by_role("button", name="Side by side").click()
    expect(box.locator(".picture-sides")).to_be_visible()
    expect(box.locator(".picture-stack")).to_be_hidden()
    assert not errors, errors
