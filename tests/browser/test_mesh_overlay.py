"""The compare page's overlay in a real Chromium: a smaller old part inside a bigger new
one shows through it, and every layout switch clears what the previous layout drew."""

from __future__ import annotations

import struct

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

# The average colour of a 9 × 9 square at the canvas's centre (the view is centred on
# the two parts, so there lies the inside of the small old cube).
CENTRE = """canvas => {
  const gl = canvas.getContext("webgl");
  const x = Math.floor(gl.drawingBufferWidth / 2) - 4, y = Math.floor(gl.drawingBufferHeight / 2) - 4;
  const px = new Uint8Array(9 * 9 * 4);
  gl.readPixels(x, y, 9, 9, gl.RGBA, gl.UNSIGNED_BYTE, px);
  const sum = [0, 0, 0, 0];
  for (let i = 0; i < px.length; i++) sum[i % 4] += px[i];
  return sum.map((s) => s / 81);
}"""


def cube_stl(side: float) -> bytes:
    """A binary STL of a cube of `side` mm centred on the origin, faces wound outwards."""
    h = side / 2
    corners = [(x, y, z) for x in (-h, h) for y in (-h, h) for z in (-h, h)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    triangles = []
    for a, b, c, d in faces:
        triangles += [(a, b, c), (a, c, d)]
    body = b"".join(
        struct.pack("<12fH", 0, 0, 0, *corners[i], *corners[j], *corners[k], 0) for i, j, k in triangles
    )
    return b"\0" * 80 + struct.pack("<I", len(triangles)) + body


def orange(rgba: list[float]) -> bool:
    return rgba[3] > 0 and rgba[0] > rgba[2] + 40


def test_the_overlay_shows_a_smaller_old_part_inside_the_new_one_after_any_switch(page, alice):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    design = DesignFactory(owner=alice, slug="box")
    old = commit_files(design, {"box.stl": cube_stl(10)}, message="Small")
    new = commit_files(design, {"box.stl": cube_stl(40)}, message="Big")

    # The geometric comparison runs inline in the suite (no worker): give the page time.
    page.goto(f"/alice/box/compare/?base={old}&head={new}", timeout=120_000)
    viewer = page.locator("[data-mesh-viewer]")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(viewer).to_have_attribute("data-layout", "overlay")
    page.wait_for_timeout(300)
    canvas = viewer.locator("canvas").first

    # Only the old cube is at the centre, inside the new one: it shows in orange.
    overlay = canvas.evaluate(CENTRE)
    assert orange(overlay), overlay
    ARTIFACTS.mkdir(exist_ok=True)
    viewer.screenshot(path=str(ARTIFACTS / "mesh-overlay-inside.png"))

    page.click(".mv-segmented button:has-text('New')")
    page.wait_for_timeout(300)
    only_new = canvas.evaluate(CENTRE)
    assert not orange(only_new) and only_new[3] > 0, only_new
    page.click(".mv-segmented button:has-text('Both')")

    page.click("button:has-text('Side by side')")
    expect(viewer).to_have_attribute("data-layout", "side")
    expect(viewer).to_have_attribute("data-canvases", "2")
    expect(viewer.locator("canvas")).to_have_count(2)
    expect(viewer.locator(".mv-caption")).to_have_count(2)

    page.click("button:has-text('Overlay')")
    expect(viewer).to_have_attribute("data-layout", "overlay")
    expect(viewer).to_have_attribute("data-canvases", "1")
    # The side-by-side canvas and its captions are gone, not just hidden.
    expect(viewer.locator("canvas")).to_have_count(1)
    expect(viewer.locator(".mv-caption")).to_have_count(0)
    page.wait_for_timeout(300)
    again = canvas.evaluate(CENTRE)
    assert orange(again), again
    width = canvas.evaluate("c => c.clientWidth / c.parentElement.clientWidth")
    assert width > 0.9, width

    # And once more: side by side is rebuilt, both sides drawn.
    page.click("button:has-text('Side by side')")
    expect(viewer.locator("canvas")).to_have_count(2)
    page.wait_for_timeout(300)
    for i in range(2):
        assert viewer.locator("canvas").nth(i).evaluate(CENTRE)[3] > 0
    assert not errors, errors
