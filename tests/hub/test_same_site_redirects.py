"""After a form, the browser goes to a path on this hub, never to an address someone posted.

Every form that sends the person back where they came from carries a `next` field; it is
hostile input. Each door below is tried with the same list of ways out of the site.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from hub.redirects import safe_next
from machines.services import calendar_feed_get
from tests.machines.factories import make_lab
from tests.printing.factories import make_printer

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

WAYS_OUT = [
    "https://evil.example/",
    "http://evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "javascript:alert(1)",
    "http://testserver@evil.example/",
    " //evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "https:evil.example",
]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def lab(alice):
    return make_lab(alice)


@pytest.fixture
def printer(lab):
    return make_printer(lab).machine


def post_feed_reset(alice, next_value: str):
    feed = calendar_feed_get(owner=alice)
    return signed_in(alice).post(reverse("calendar-feed-reset", args=[feed.token]), {"next": next_value})


def post_printer_cleared(alice, lab, printer, next_value: str):
    url = reverse("printer-cleared", args=[lab.slug, printer.slug])
    return signed_in(alice).post(url, {"next": next_value})


@pytest.mark.parametrize("way_out", WAYS_OUT)
def test_the_calendar_feed_reset_form_never_redirects_off_the_site(alice, way_out):
    response = post_feed_reset(alice, way_out)
    assert response.status_code == 302
    assert response["Location"] == reverse("my-bookings")


def test_the_calendar_feed_reset_form_returns_to_a_same_site_page(alice):
    response = post_feed_reset(alice, "/labs/fablab/?week=2")
    assert response["Location"] == "/labs/fablab/?week=2"


@pytest.mark.parametrize("way_out", WAYS_OUT)
def test_the_printer_cleared_button_never_redirects_off_the_site(alice, lab, printer, way_out):
    response = post_printer_cleared(alice, lab, printer, way_out)
    assert response.status_code == 302
    assert response["Location"] == reverse("print-queue", args=[lab.slug])


def test_the_printer_cleared_button_returns_to_the_page_it_was_on(alice, lab, printer):
    path = reverse("print-queue", args=[lab.slug]) + "?page=2"
    assert post_printer_cleared(alice, lab, printer, path)["Location"] == path


@pytest.mark.parametrize("way_out", WAYS_OUT)
def test_signing_in_never_redirects_off_the_site(alice, way_out):
    response = Client().post(
        reverse("login"), {"username": "alice", "password": "correct horse battery", "next": way_out}
    )
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location


@pytest.mark.parametrize("way_out", WAYS_OUT)
def test_safe_next_refuses_every_way_out_for_get_requests_too(rf, way_out):
    assert safe_next(rf.get("/", {"next": way_out}), "/home/") == "/home/"


def test_only_hub_redirects_reads_a_posted_next():
    """One door for `next`: a view that read it by itself would bypass the checks above."""
    readers = []
    for package in ("hub", "designs", "machines"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value == "next"
                ):
                    readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # The door itself is found: the scan sees the files and the calls it looks for.
    assert [reader.partition(":")[0] for reader in readers] == ["hub/redirects.py"], readers
