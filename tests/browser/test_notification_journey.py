"""People notice collaboration (issue 21): mia opens a proposal on ada's design, ada sees it
in her navigation and inbox, comments, mia is told, ada merges and tags a release, and a
person watching the design's releases is told of it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from designs import services
from designs.services import watches
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.browser


def log_out(page) -> None:
    page.click("header button:has-text('Log out')")
    expect(page.locator("header")).to_contain_text("Log in")


def test_a_proposal_comment_merge_and_release_reach_the_people_concerned(page, log_in):
    ada, mia = UserFactory(username="ada"), UserFactory(username="mia")
    wes = UserFactory(username="wes")
    rover = DesignFactory(owner=ada, slug="rover", title="Rover")
    commit_files(rover, {"README.md": "# Rover\n", "notes.txt": "wheels\n"}, "Start")
    fork = services.design_fork(design=rover, user=mia)
    commit_files(fork, {"notes.txt": "wheels\nbigger wheels\n"}, "Bigger wheels", author=mia)
    watches.watch_set(design=rover, user=wes, level="releases")

    # mia proposes her change.
    log_in("mia")
    page.goto("/ada/rover/proposals/new/?source=mia/rover")
    page.fill("input[name=title]", "Bigger wheels")
    page.fill("textarea[name=description]", "For rough ground.")
    page.click("button:has-text('Open proposal')")
    expect(page).to_have_url(re.compile(r"/ada/rover/proposals/1/$"))
    expect(page.locator("#unread-count")).to_have_count(0)  # nobody tells mia of her own act
    log_out(page)

    # ada sees it in her navigation (the fork and the proposal) and in her inbox.
    log_in("ada")
    expect(page.locator("#unread-count")).to_have_text("2")
    page.click("#nav-notifications")
    first = page.locator("#notification-list li.notification").first
    expect(first).to_contain_text("mia opened #1 Bigger wheels on ada/rover")
    expect(first).to_have_class(re.compile(r"\bunread\b"))
    first.locator("button:has-text('Mark read')").click()
    expect(page.locator("#unread-count")).to_have_text("1")
    page.locator("#notification-list a:has-text('Bigger wheels')").click()
    expect(page).to_have_url(re.compile(r"/ada/rover/proposals/1/$"))

    # ada comments: mia is told.
    page.fill("textarea[name=body]", "Looks good, @mia; merging.")
    page.click("button:has-text('Comment')")
    expect(page.locator("body")).to_contain_text("Looks good")
    log_out(page)
    log_in("mia")
    expect(page.locator("#unread-count")).to_have_text("1")
    page.click("#nav-notifications")
    expect(page.locator("#notification-list li.notification").first).to_contain_text(
        "ada mentioned you on ada/rover #1 Bigger wheels"
    )
    page.click("#mark-all-read")
    expect(page.locator("#unread-count")).to_have_count(0)
    log_out(page)

    # ada merges and tags a release.
    log_in("ada")
    page.goto("/ada/rover/proposals/1/")
    page.click("button:has-text('Merge into main')")
    expect(page.locator("body")).to_contain_text("Merged")
    page.goto("/ada/rover/tags/")
    page.fill("input[name=name]", "v1.0")
    # The form that creates a release (a tag): its button's words are the page's to choose.
    page.click("form:has(input[name=action][value=create]) button[type=submit]")
    expect(page.locator("body")).to_contain_text("v1.0")
    log_out(page)

    # mia hears of the merge; wes, who watches releases, of the release only.
    log_in("mia")
    page.click("#nav-notifications")
    # Newest first: the release (she watches the design since she proposed), then the merge.
    expect(page.locator("#notification-list")).to_contain_text("ada merged ada/rover #1 Bigger wheels")
    expect(page.locator("#notification-list li.notification").first).to_contain_text(
        "ada/rover released v1.0"
    )
    log_out(page)
    log_in("wes")
    expect(page.locator("#unread-count")).to_have_text("1")
    page.click("#nav-notifications")
    notes = page.locator("#notification-list li.notification")
    expect(notes).to_have_count(1)
    expect(notes.first).to_contain_text("ada/rover released v1.0")
    notes.first.locator("a:has-text('released v1.0')").click()
    expect(page).to_have_url(re.compile(r"/ada/rover/tags/$"))
