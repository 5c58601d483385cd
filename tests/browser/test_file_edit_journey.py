"""Editing a README in a real Chromium: Edit from the file page, Preview rendered by the
hub, commit, and the file page shows the new text."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser


def test_a_writer_edits_previews_and_commits_a_readme(page, alice, log_in):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    design = DesignFactory(owner=alice, slug="hinge")
    commit_files(design, {"README.md": "# Hinge\n"})
    log_in("alice")

    page.goto("/alice/hinge/blob/README.md?ref=main")
    page.click("a:has-text('Edit README.md')")
    editor = page.locator("textarea[name=content]")
    expect(editor).to_have_value("# Hinge\n")
    editor.fill("# Hinge\n\nPrint it **flat**.\n\n<script>alert(1)</script>\n")
    page.click("button:has-text('Preview')")

    preview = page.locator(".editor-preview")
    expect(preview.locator("strong")).to_have_text("flat")
    expect(preview.locator("script")).to_have_count(0)
    expect(editor).to_be_hidden()
    page.click("button:has-text('Write')")
    expect(editor).to_be_visible()

    page.fill("input[name=message]", "Say how to print it")
    page.click("button:has-text('Commit to main')")
    expect(page.locator(".messages")).to_contain_text("Committed your edit of README.md")
    expect(page.locator("body")).to_contain_text("Print it **flat**.")
    assert design.repo.log("main", limit=1)[0].summary == "Say how to print it"
    assert not errors, errors
