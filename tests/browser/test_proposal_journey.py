"""Proposing a change and resolving its conflict in a real Chromium: a commit on a fork's
branch, the design page's "compare & propose", the branch pickers and the preview, the
proposal opened upstream, its conflict resolved hunk by hunk by the upstream's owner, merged."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from designs import services
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

TEXT = "Bracket notes\nwidth 40\nheight 20\nribs 2\n"


def test_a_branch_is_proposed_upstream_and_its_conflict_resolved_in_the_browser(page, log_in, alice, bob):
    upstream = DesignFactory(owner=alice, slug="bracket")
    commit_files(upstream, {"notes.txt": TEXT}, "Start")
    fork = services.design_fork(design=upstream, user=bob)
    services.branch_create(design=fork, user=bob, name="ribs")
    commit_files(upstream, {"notes.txt": TEXT.replace("ribs 2", "ribs 3")}, "Three ribs")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # bob commits to his fork's branch from the upload page.
    log_in("bob")
    page.goto("/bob/bracket/upload/")
    page.set_input_files(
        "input[name=files]",
        files=[
            {
                "name": "notes.txt",
                "mimeType": "text/plain",
                "buffer": TEXT.replace("ribs 2", "ribs 4").encode(),
            }
        ],
    )
    page.fill("textarea[name=message]", "Four ribs")
    page.select_option("select[name=branch]", "ribs")
    page.click("button:has-text('Commit files')")
    expect(page.locator(".message.success")).to_contain_text("Committed")

    # The design page offers to propose the branch upstream.
    prompt = page.locator("[data-propose-prompt]")
    expect(prompt).to_contain_text("alice/bracket:main")
    prompt.get_by_role("link", name="Compare & propose").click()

    # The pickers: the upstream is the target; the preview shows the commit and the diff.
    expect(page.locator("select[name=target]")).to_have_value("alice/bracket")
    expect(page.locator("select[name=source_branch]")).to_have_value("ribs")
    expect(page.locator("[data-preview-commits]")).to_contain_text("Four ribs")
    expect(page.locator("[data-preview-diff]")).to_contain_text("notes.txt")

    # Picking the fork's own main as the source shows that nothing is there to propose...
    page.select_option("select[name=source_branch]", "main")
    expect(page.locator("[data-preview-problem]")).to_contain_text("Nothing to propose")
    # ...and back: the preview follows the picker, with no button pressed.
    page.select_option("select[name=source_branch]", "ribs")
    expect(page.locator("[data-preview-commits]")).to_contain_text("Four ribs")

    page.fill("input[name=title]", "Four ribs are stiffer")
    page.click("button:has-text('Open proposal')")
    expect(page).to_have_url(re.compile(r"/alice/bracket/proposals/1/$"))
    expect(page.locator("#conflicts")).to_contain_text("Conflicts with main")
    expect(page.locator("[data-conflict-recipe]")).to_contain_text("Or resolve on the command line")

    # alice, who can merge, resolves it in the browser: both lines, hers first.
    page.context.clear_cookies()
    log_in("alice")
    page.goto("/alice/bracket/proposals/1/")
    notes = page.locator("[data-conflict-file='notes.txt']")
    expect(notes.locator("[data-hunk]")).to_have_count(1)
    notes.get_by_label("both (main's first)").check()
    page.click("button:has-text('Resolve and merge into main')")

    expect(page.locator(".message.success")).to_contain_text("Resolved and merged into main")
    expect(page.locator(".callout.success")).to_contain_text("Merged by alice")
    merged = upstream.repo.branch_head("main")
    text = upstream.repo.read_blob(upstream.repo.entry(merged, "notes.txt").sha).decode()
    assert text == TEXT.replace("ribs 2", "ribs 3\nribs 4")
    assert upstream.repo.commit(merged).author.name == "Alice Maker"
    assert not errors, errors
