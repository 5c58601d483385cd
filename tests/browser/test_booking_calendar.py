"""Booking from the lab's week grid in a browser (issue 22, part 6): a member clicks free
time on a machine's line, the machine's form opens filled with that hour, the booking is
made, and its block appears on the grid where the click was; a drag picks a longer range.

The grid shows next week, so that every hour of it lies ahead whatever the time the test
runs; the lab is open 09:00–21:00, so each day's track is 12 hours wide.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from machines import timeline
from machines.models import Booking
from tests.machines.factories import add_member, at, make_lab, make_machine

pytestmark = pytest.mark.browser


@pytest.fixture
def lab(alice, bob):
    lab = make_lab(alice, slug="fablab", hours="09:00-21:00")
    add_member(lab, bob)
    make_machine(lab, slug="laser", name="Laser cutter")
    return lab


def next_monday(lab):
    return timeline.week_start(timezone.now(), lab.zone) + timedelta(days=7)


def track(page, machine: str, day: int):
    """The track of `machine`'s line on the week's `day` (0 = Monday)."""
    row = page.locator("table.week-grid tbody tr", has=page.locator(f"th a:has-text('{machine}')"))
    return row.locator("td .track").nth(day)


def point(box, fraction: float) -> tuple[float, float]:
    return box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2


def test_a_click_on_free_time_books_that_hour_and_the_block_appears(page, log_in, lab, bob):
    monday = next_monday(lab)
    tuesday = monday + timedelta(days=1)
    grid_url = reverse("lab-detail", args=["fablab"]) + f"?week={monday:%Y-%m-%d}"
    log_in("bob")
    page.goto(grid_url)
    expect(page.locator("table.week-grid.positioned")).to_be_visible()

    # 12:05 on a 09:00–21:00 track: a quarter of the way in, and a little more.
    box = track(page, "Laser cutter", 1).bounding_box()
    page.mouse.click(*point(box, (3 + 5 / 60) / 12))

    expect(page).to_have_url(re.compile(r"/labs/fablab/machines/laser/\?start=.+#book$"))
    form = page.locator("form.booking-form")
    expect(form.locator("input[name=day]")).to_have_value(f"{tuesday:%Y-%m-%d}")
    expect(form.locator("input[name=start_time]")).to_have_value("12:00")
    expect(form.locator("input[name=end_time]")).to_have_value("13:00")
    form.locator("input[name=note]").fill("Front panel")
    form.locator("button:has-text('Book')").click()
    expect(page.locator(".message.success")).to_contain_text("Booked")

    booking = Booking.objects.get()
    assert (booking.start, booking.end) == (at(lab, tuesday, "12:00"), at(lab, tuesday, "13:00"))

    page.goto(grid_url)
    block = track(page, "Laser cutter", 1).locator(".block.booking")
    expect(block).to_have_count(1)
    expect(block).to_contain_text("12:00–13:00")
    placed, whole = block.bounding_box(), track(page, "Laser cutter", 1).bounding_box()
    # A quarter in and a twelfth wide: placed in proportion to its hours (within 2 px).
    assert abs(placed["x"] - (whole["x"] + whole["width"] * 0.25)) < 2
    assert abs(placed["width"] - whole["width"] / 12) < 2


def test_a_drag_over_free_time_picks_that_range(page, log_in, lab, bob):
    monday = next_monday(lab)
    log_in("bob")
    page.goto(reverse("lab-detail", args=["fablab"]) + f"?week={monday:%Y-%m-%d}")
    expect(page.locator("table.week-grid.positioned")).to_be_visible()

    box = track(page, "Laser cutter", 2).bounding_box()  # Wednesday
    page.mouse.move(*point(box, 6 / 12 + 0.002))  # 15:00
    page.mouse.down()
    page.mouse.move(*point(box, 7.4 / 12), steps=5)  # 16:24, up to 16:30
    expect(track(page, "Laser cutter", 2).locator(".block.selection")).to_contain_text("15:00–16:30")
    page.mouse.move(*point(box, 8.9 / 12), steps=5)  # 17:54, rounded up to 18:00
    page.mouse.up()

    form = page.locator("form.booking-form")
    expect(form.locator("input[name=day]")).to_have_value(f"{monday + timedelta(days=2):%Y-%m-%d}")
    expect(form.locator("input[name=start_time]")).to_have_value("15:00")
    expect(form.locator("input[name=end_time]")).to_have_value("18:00")


def test_without_scripts_free_time_is_a_link_to_the_form(browser, live_server, lab, bob, transactional_db):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/login/")
        page.fill("input[name=username]", "bob")
        page.fill("input[name=password]", "correct horse battery")
        page.click("button:has-text('Log in')")
        monday = next_monday(lab)
        page.goto(reverse("lab-detail", args=["fablab"]) + f"?week={monday:%Y-%m-%d}")
        first = track(page, "Laser cutter", 0).locator("a.block.free")
        expect(first).to_contain_text("free 09:00–21:00")
        first.click()
        expect(page.locator("input[name=start_time]")).to_have_value("09:00")
        expect(page.locator("input[name=end_time]")).to_have_value("10:00")
    finally:
        context.close()


def test_the_feed_s_copy_button_copies_its_address(page, log_in, lab, bob):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in("bob")
    page.goto(reverse("lab-detail", args=["fablab"]))
    feed = page.locator("section.feed")
    address = feed.locator("pre.token").inner_text().strip()

    feed.locator("button:has-text('Copy address')").click()

    expect(feed.locator("button[data-copy]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == address
    webcal = feed.locator("a:has-text('Subscribe (webcal)')").get_attribute("href")
    assert webcal == "webcal://" + address.split("://", 1)[1]
