"""A diff page in a real Chromium answers before its comparisons are done and fills them
in without a reload, from the embedded worker (the default set-up) computing them."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

CORPUS = Path("/work/shared/corpus/meshes/prusa-i3")


@pytest.fixture
def embedded_worker(settings):
    """The hub's default background worker (a thread of the server) instead of the
    suite's inline tasks: the page must answer before the work it queued is done."""
    from hub.queue import wait_for_embedded_worker

    settings.FABHUB_EMBEDDED_WORKER = True
    yield
    wait_for_embedded_worker()


def test_a_compare_page_fills_in_its_diffs_without_a_reload(page, alice, embedded_worker):
    design = DesignFactory(owner=alice, slug="parts")
    lever = (CORPUS / "fs-lever.stl").read_bytes()
    knob = (CORPUS / "LCD-knob.stl").read_bytes()
    first = commit_files(design, {"part.stl": lever, "notes.txt": "first line\n"})
    second = commit_files(design, {"part.stl": knob, "notes.txt": "second line\n"}, message="Change")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    answer = page.goto(f"/alice/parts/compare/?base={first}&head={second}")
    page.evaluate("window.stillTheFirstLoad = true")

    sent = answer.text()
    assert "data-pending" in sent and "of 1 mesh compared" in sent and "Geometric comparison" not in sent
    expect(page.locator("table.geometry")).to_be_visible(timeout=90_000)
    expect(page.locator("section.diff[data-pending]")).to_have_count(0)
    expect(page.locator(".diff-progress")).to_be_hidden()
    expect(page.locator("pre.patch .add")).to_have_text("+second line")
    # The filled-in mesh got its 3D view started like one sent with the page.
    expect(page.locator("[data-mesh-viewer]")).to_have_attribute("data-state", "ready", timeout=20_000)
    assert page.evaluate("window.stillTheFirstLoad") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diff-filled-in.png"), full_page=True)
    assert not errors, errors
