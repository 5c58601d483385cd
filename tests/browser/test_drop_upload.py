"""Drag-and-drop onto the upload page in a real Chromium: the dropped files are listed and
committed as one commit with the message typed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

DROP = """zone => {
  const data = new DataTransfer();
  data.items.add(new File(["cube(2);\\n"], "jaw.scad"));
  data.items.add(new File(["# Notes\\n"], "notes.md"));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def test_dropped_files_are_committed_as_one_commit(page, alice, log_in):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"README.md": "# Clamp\n"})
    before = design.repo.branch_head("main")
    log_in("alice")

    page.goto("/alice/clamp/upload/")
    zone = page.locator(".drop-zone")
    expect(zone).to_be_visible()
    zone.evaluate(DROP)
    expect(zone).to_have_attribute("data-count", "2")
    expect(page.locator(".drop-list li")).to_have_count(2)
    page.fill("textarea[name=message]", "Dropped in")
    page.click("button:has-text('Commit files')")

    expect(page.locator(".messages")).to_contain_text("Committed 2 files to main")
    head = design.repo.branch_head("main")
    assert design.repo.log("main", limit=2)[1].sha == before
    assert design.repo.log("main", limit=1)[0].summary == "Dropped in"
    assert design.repo.read_blob(design.repo.entry(head, "jaw.scad").sha) == b"cube(2);\n"
    assert design.repo.entry(head, "notes.md") is not None
    assert not errors, errors
