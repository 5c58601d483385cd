"""A person resets a forgotten password from the e-mailed link, then changes it again."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

FIRST = "a brand new passphrase"
SECOND = "another fine passphrase"


def test_forgotten_password_is_reset_from_the_mailed_link_then_changed(page, log_in, live_server, alice):
    mail.outbox.clear()
    page.goto("/login/")
    page.click("text=Forgot your password?")
    page.fill("input[name=email]", "alice@example.org")
    page.click("button:has-text('Send the link')")
    expect(page.locator("h1")).to_have_text("Check your e-mail")

    [message] = mail.outbox
    [link] = re.findall(r"https?://\S+", message.body)
    page.goto(live_server.url + "/" + link.split("/", 3)[3])
    expect(page.locator("h1")).to_have_text("Choose a new password")
    page.fill("input[name=new_password1]", "password")
    page.fill("input[name=new_password2]", "password")
    page.click("button:has-text('Set password')")
    expect(page.locator("form")).to_contain_text("too common")
    page.fill("input[name=new_password1]", FIRST)
    page.fill("input[name=new_password2]", FIRST)
    page.click("button:has-text('Set password')")
    expect(page.locator("h1")).to_have_text("Password set")

    log_in("alice", FIRST)
    page.click("header >> text=Account")
    page.fill("#password-change input[name=current_password]", FIRST)
    page.fill("#password-change input[name=new_password]", SECOND)
    page.click("button:has-text('Change password')")
    expect(page.locator(".message.success")).to_contain_text("Password changed")

    page.click("button:has-text('Log out')")
    log_in("alice", SECOND)


@pytest.mark.parametrize(("path", "shows"), [("/api/docs/", ".swagger-ui .info"), ("/api/redoc/", "h1")])
def test_the_api_reference_pages_render_under_the_content_security_policy(page, path, shows):
    # The page fixture fails the test on any CSP violation Chromium reports.
    page.goto(path)
    expect(page.locator(shows).first).to_contain_text("fabhub API", timeout=20_000)
