"""The design page in a real Chromium: the clone URL's copy button puts the URL on the
clipboard and the URL is never cut off; an empty design offers the quick-setup commands."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser


@pytest.fixture
def clipboard(page, live_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    return lambda: page.evaluate("navigator.clipboard.readText()")


def test_the_copy_button_puts_the_clone_url_on_the_clipboard(page, alice, clipboard, live_server):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# Bracket\n"})

    page.goto("/alice/bracket/")
    url = page.locator("#clone-url").inner_text().strip()
    assert url.startswith(live_server.url) and url.endswith("/alice/bracket.git"), url
    page.click("button[aria-label='Copy the clone URL']")
    expect(page.locator("button[aria-label='Copy the clone URL']")).to_have_text("Copied")
    assert clipboard() == url


def test_the_clone_url_wraps_rather_than_being_cut_off_on_a_small_screen(page, alice):
    DesignFactory(owner=alice, slug="a-design-with-a-rather-long-name-for-a-phone-screen")
    page.set_viewport_size({"width": 390, "height": 800})

    page.goto("/alice/a-design-with-a-rather-long-name-for-a-phone-screen/")
    code = page.locator("#clone-url")
    expect(code).to_contain_text("a-design-with-a-rather-long-name-for-a-phone-screen.git")
    assert code.evaluate("c => c.scrollWidth <= c.clientWidth"), "the clone URL is cut off"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_an_empty_design_offers_the_quick_setup_commands_to_copy(page, alice, log_in, clipboard):
    DesignFactory(owner=alice, slug="fresh", default_branch="main")
    log_in("alice")

    page.goto("/alice/fresh/")
    setup = page.locator("#quick-setup")
    expect(setup).to_contain_text("git lfs track")
    expect(setup).to_contain_text("git push -u origin main")
    page.click("button[aria-label='Copy the quick-setup commands']")
    expect(page.locator("button[aria-label='Copy the quick-setup commands']")).to_have_text("Copied")
    copied = clipboard()
    assert "git init" in copied and "/alice/fresh.git" in copied, copied
