"""Search in a real Chromium: a word found only in a file name finds the design, with the
matched path highlighted; a private design with the same word stays out of a stranger's
results and count, and is found by its owner (issue 21)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from designs.models import Design
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.browser


def test_a_word_only_in_a_file_name_finds_the_design_and_private_ones_stay_hidden(page, alice, log_in):
    UserFactory(username="bob")
    rover = DesignFactory(owner=alice, slug="rover", title="Rover chassis", summary="A small rover.")
    commit_files(rover, {"parts/suspension-arm_v2.stl": b"solid a\nendsolid a\n"})
    secret = DesignFactory(
        owner=alice, slug="secret", title="Secret chassis", visibility=Design.Visibility.PRIVATE
    )
    commit_files(secret, {"suspension-arm.stl": b"solid b\nendsolid b\n"})

    log_in("bob")
    page.goto("/")
    page.get_by_role("searchbox", name="Search").fill("suspension")
    page.get_by_role("searchbox", name="Search").press("Enter")

    cards = page.locator(".design-card")
    expect(cards).to_have_count(1)
    expect(cards.first.locator(".title")).to_have_text("Rover chassis")
    expect(cards.first.locator(".matched-paths mark").first).to_have_text("suspension")
    expect(page.get_by_text("1 design", exact=False).first).to_be_visible()
    assert "Secret" not in page.content()

    # "v2" is a word of the file name too, found as the hub splits names.
    page.goto("/?q=arm+v2")
    expect(page.locator(".design-card .title")).to_have_text(["Rover chassis"])

    page.context.clear_cookies()
    log_in("alice")
    page.goto("/?q=suspension")
    expect(page.locator(".design-card .title")).to_have_count(2)
