"""The 3D viewer in a real Chromium: it draws the mesh, turns with the mouse, overlays diffs."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from designs import selectors
from designs.models import BlobDiff
from tests.browser.conftest import ARTIFACTS
from tests.designs.test_mesh_pages import TURN_X_180, turned_stl
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

CORPUS = Path("/work/shared/corpus/meshes/prusa-i3")

# Counts the canvas's drawn pixels (the background is transparent) and how many lean
# orange (the old version) or blue-grey (the new one). The viewer keeps its drawing
# buffer, so this reads what is on screen.
PIXELS = """canvas => {
  const gl = canvas.getContext("webgl");
  const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
  const px = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
  let drawn = 0, orange = 0, blue = 0, sum = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] === 0) continue;
    drawn++;
    sum = (sum * 31 + px[i] + px[i + 1] * 7 + px[i + 2] * 13 + i) % 1000000007;
    if (px[i] > px[i + 2] + 40) orange++;
    else if (px[i + 2] > px[i] + 10) blue++;
  }
  return {total: w * h, drawn, orange, blue, sum};
}"""


@pytest.fixture(autouse=True)
def no_script_errors(page):
    """Every test here also checks that the viewer threw nothing."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield
    assert not errors, errors


def shot(page, name: str, locator=None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    if locator is None:
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    else:
        locator.screenshot(path=str(ARTIFACTS / name))


def test_the_file_page_draws_the_mesh_and_turns_it_with_the_mouse(page, alice):
    design = DesignFactory(owner=alice, slug="extruder", title="Prusa i3 extruder")
    commit_files(design, {"parts/extruder-body.stl": (CORPUS / "extruder-body.2017-11-29.stl").read_bytes()})

    page.goto("/alice/extruder/blob/parts/extruder-body.stl")
    viewer = page.locator("[data-mesh-viewer]")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=20_000)
    page.wait_for_timeout(300)  # the first frame is drawn on the next animation frame
    canvas = viewer.locator("canvas").first

    before = canvas.evaluate(PIXELS)
    assert before["drawn"] > before["total"] * 0.05, before
    assert before["blue"] > before["drawn"] * 0.5, before
    expect(page.locator(".mesh-facts")).to_contain_text("Watertight")
    shot(page, "mesh-file-page.png")

    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 40, steps=8)
    page.mouse.up()
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(300)
    turned = canvas.evaluate(PIXELS)
    assert turned["sum"] != before["sum"]
    shot(page, "mesh-file-turned.png", viewer)

    page.click("button:has-text('Reset view')")
    page.wait_for_timeout(300)
    assert canvas.evaluate(PIXELS)["sum"] == before["sum"]


def test_the_fit_check_answers_on_the_file_page(page, alice):
    design = DesignFactory(owner=alice, slug="knob")
    commit_files(design, {"knob.stl": (CORPUS / "LCD-knob.stl").read_bytes()})

    page.goto("/alice/knob/blob/knob.stl")
    page.fill("input[name=build_volume]", "250x210x210")
    page.click("button:has-text('Check')")

    expect(page.locator(".fit-result")).to_have_text("Fits in 250x210x210 mm (rotation allowed).")


def test_the_compare_page_overlays_the_old_and_new_versions(page, alice):
    design = DesignFactory(owner=alice, slug="extruder", title="Prusa i3 extruder")
    march = (CORPUS / "extruder-body.2017-03-13.stl").read_bytes()
    november = (CORPUS / "extruder-body.2017-11-29.stl").read_bytes()
    old = commit_files(design, {"extruder-body.stl": march}, message="March")
    new = commit_files(design, {"extruder-body.stl": november}, message="November")

    page.goto(f"/alice/extruder/compare/?base={old}&head={new}")
    viewer = page.locator("[data-mesh-viewer]")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=30_000)
    page.wait_for_timeout(300)
    canvas = viewer.locator("canvas").first

    both = canvas.evaluate(PIXELS)
    assert both["orange"] > 200 and both["blue"] > 200, both
    expect(page.locator(".table.figures.compare")).to_contain_text("Before")
    shot(page, "mesh-compare-page.png")
    shot(page, "mesh-compare-overlay.png", page.locator(".mesh-diff").first)

    page.click(".mv-segmented button:has-text('New')")
    page.wait_for_timeout(300)
    only_new = canvas.evaluate(PIXELS)
    assert only_new["orange"] < both["orange"] / 10, only_new

    page.click("button:has-text('Side by side')")
    expect(viewer.locator("canvas")).to_have_count(2)
    page.wait_for_timeout(300)
    left, right = (viewer.locator("canvas").nth(i).evaluate(PIXELS) for i in range(2))
    assert left["orange"] > left["drawn"] * 0.5, left
    assert right["blue"] > right["drawn"] * 0.5, right
    shot(page, "mesh-compare-side-by-side.png", page.locator(".mesh-diff").first)


def test_the_overlay_moves_the_old_part_onto_the_new_one_when_the_diff_aligned_them(page, alice):
    design = DesignFactory(owner=alice, slug="lever")
    lever = (CORPUS / "fs-lever.stl").read_bytes()
    shift = [30.0, 0.0, 10.0]
    old = commit_files(design, {"lever.stl": lever}, message="As designed")
    new = commit_files(design, {"lever.stl": turned_stl(lever, TURN_X_180, shift)}, message="Re-exported")
    # The diff's own alignment is tested with designs.meshes; here, the view applies one.
    BlobDiff.objects.create(
        old_sha=selectors.design_file(design, rev=old, path="lever.stl")[1].sha,
        new_sha=selectors.design_file(design, rev=new, path="lever.stl")[1].sha,
        differ="geometry:stl:stl",
        new_path="lever.stl",
        status="done",
        detail={"aligned": True, "alignment_rotation": TURN_X_180, "alignment_shift_mm": shift},
    )

    page.goto(f"/alice/lever/compare/?base={old}&head={new}")
    viewer = page.locator("[data-mesh-viewer]")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=20_000)
    page.wait_for_timeout(300)
    canvas = viewer.locator("canvas").first
    aligned = canvas.evaluate(PIXELS)
    shot(page, "mesh-compare-aligned.png", viewer)
    page.click("button:has-text('As placed')")
    page.wait_for_timeout(300)
    as_placed = canvas.evaluate(PIXELS)
    shot(page, "mesh-compare-as-placed.png", viewer)

    # Aligned, the old surface lies on the new one, which hides it; as placed, it shows.
    assert aligned["orange"] < aligned["drawn"] * 0.02, aligned
    assert as_placed["orange"] > as_placed["drawn"] * 0.2, as_placed


def test_the_design_list_shows_thumbnails(page, alice):
    for slug, name in (("knob", "LCD-knob.stl"), ("lever", "fs-lever.stl"), ("idler", "extruder-idler.stl")):
        design = DesignFactory(owner=alice, slug=slug, summary=f"The {slug} of a Prusa i3.")
        commit_files(design, {name: (CORPUS / name).read_bytes()})
    DesignFactory(owner=alice, slug="no-mesh-yet", summary="Nothing printable here.")

    page.goto("/")
    images = page.locator(".design-thumb img")
    expect(images).to_have_count(3)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.design-thumb img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "design-list-thumbnails.png")
