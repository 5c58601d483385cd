"""Playwright (sync API) driving Debian's Chromium against pytest-django's live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse
# the test's own database calls as "async-unsafe". The live server runs in its own thread.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Keep Chromium quiet and off the network: these machines have none to offer.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Requests the policy refuses by design, not by mistake: Redoc always fetches its vendor's
# logo from a CDN, and the hub's pages make no third-party requests (Redoc shows no logo).
BLOCKED_ON_PURPOSE = ("https://cdn.redoc.ly/",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see if the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(request, browser, live_server, transactional_db):
    """A fresh browser tab on the live server; a screenshot is kept if the test fails."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    # Assertions wait as long as actions do: under a loaded CI machine a page that renders
    # a mesh took longer than expect()'s own 5 s default (seen on the fit-check test).
    expect.set_options(timeout=10_000)
    # Every browser test is also a Content-Security-Policy test: Chromium reports each
    # script, style or connection the policy refused on the console, and any is a failure.
    violations: list[str] = []

    def on_console(message) -> None:
        text = message.text
        if "Content Security Policy" in text and not any(url in text for url in BLOCKED_ON_PURPOSE):
            violations.append(text)

    page.on("console", on_console)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not violations, "the page broke its Content-Security-Policy:\n" + "\n".join(violations)


@pytest.fixture
def log_in(page):
    def log_in(username: str, password: str = "correct horse battery") -> None:
        page.goto("/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button:has-text('Log in')")
        page.wait_for_selector(f"header .who:has-text('{username}')")

    return log_in
