"""A person asks for an archive of their account, follows it until it is ready and
downloads it: a signed ZIP with its manifest."""

from __future__ import annotations

import json
import zipfile

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_a_person_asks_for_an_archive_and_downloads_it(page, log_in, alice):
    log_in("alice")
    page.click("header >> text=Account")
    expect(page.locator("#archives h2")).to_have_text("Your archive")
    page.click("button:has-text('Ask for an archive')")
    expect(page.locator(".message.success")).to_contain_text("Your archive is being built")
    # The page reloads itself while the archive is queued or building (data-reload-after).
    ready = page.locator("#archive-list tr.archive[data-status=ready]")
    expect(ready).to_have_count(1, timeout=30_000)
    expect(ready).to_contain_text("Ready")
    with page.expect_download() as download_info:
        ready.locator("a:has-text('Download')").click()
    download = download_info.value
    assert download.suggested_filename.startswith("fabhub-alice-")
    assert download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.path()) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["account"]["username"] == "alice"
    assert manifest["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert {entry["path"] for entry in manifest["files"]} >= {"account.json", "records/credentials.json"}
