"""Pages fit a phone (issue 22, part 7): at 390 × 844 no page scrolls sideways.

The walk covers what a maker and a lab member open, with the kind of content that used
to push pages wide: long file paths and commit messages, hashes, tables, pre blocks. Wide
tables and the week grid may scroll inside their own box; the page itself may not.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from designs import services
from machines.models import Machine
from machines.printing import services as printing
from tests.factories import DesignFactory, commit_files
from tests.machines.factories import add_member, book, make_lab, make_machine
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import gcode_upload, make_printer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LONG_PATH = "hardware/enclosure/front-panel/revision-b/mounting-brackets-for-the-display-module-left.scad"
LONG_MESSAGE = (
    "Move the display module's mounting brackets 2.5 mm towards the centre so that the "
    "ribbon cable of the 7-inch panel clears the enclosure's inner wall at every tolerance"
)
README = (
    "# Weather station enclosure\n\n"
    "Print with `PETG`, 0.2 mm layers. The long command:\n\n"
    "```\n"
    "prusa-slicer --export-gcode --load config/enclosure-petg-0.2mm-layers-four-perimeters.ini "
    "hardware/enclosure/front-panel/revision-b/front-panel.stl\n"
    "```\n\n"
    "A very long word: Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherung.\n"
)


@pytest.fixture
def small_page(browser, live_server, request, page):
    """The suite's page fixture (CSP watch, screenshots) resized to a phone."""
    page.set_viewport_size(PHONE)
    return page


@pytest.fixture
def world(alice, bob, tmp_path):
    """A design with history, a fork with a proposal, a tag; a lab with a booking and a print job."""
    design = DesignFactory(owner=alice, slug="weather-station", title="Weather station enclosure")
    first = commit_files(design, {"README.md": README, LONG_PATH: "cube(10);\n"}, message="First version")
    second = commit_files(design, {LONG_PATH: "cube(12);\n"}, message=LONG_MESSAGE)
    services.tag_create(
        design=design, user=alice, name="v1.0.0-release-candidate", target=None, notes="- first\n"
    )
    fork = services.design_fork(design=design, user=bob, slug="weather-station")
    long_line = "translate([0, 0, 2.5]) cube([14, 14, 14]); // " + "moved towards the centre " * 8
    commit_files(fork, {LONG_PATH: long_line + "\n"}, message=LONG_MESSAGE, author=bob)
    proposal = services.proposals.proposal_create(
        target=design,
        user=bob,
        source=fork,
        source_branch="main",
        target_branch="main",
        title="Brackets towards the centre so the ribbon cable clears the wall",
        description=LONG_MESSAGE,
    )

    lab = make_lab(alice, slug="makerspace-downtown", hours="00:00-00:00")
    add_member(lab, bob)
    laser = make_machine(lab, slug="laser", kind=Machine.Kind.LASER_CUTTER, capabilities={"max_power_w": 60})
    tomorrow = (timezone.now().astimezone(lab.zone) + timedelta(days=1)).date()
    book(laser, bob, tomorrow, "10:00", "11:00", note="Cutting the front panel")
    make_printer(
        lab, slug="mk4", name="Prusa MK4", capabilities={"materials": ["PLA"], "nozzle_diameters_mm": [0.4]}
    )
    gcode = write_test_gcode(tmp_path / "front-panel-revision-b-with-a-long-name.gcode", moves=20)
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(gcode))
    return {"design": design, "first": first, "second": second, "proposal": proposal, "lab": lab, "job": job}


def pages(world) -> list[tuple[str, str]]:
    d = ("alice", "weather-station")
    return [
        ("home", "/"),
        ("design list", reverse("design-list") + "?q=weather"),
        ("design page", reverse("design-detail", args=d)),
        ("file page", reverse("design-blob", args=[*d, LONG_PATH])),
        ("history", reverse("design-history", args=d)),
        ("commit", reverse("design-commit", args=[*d, world["second"]])),
        ("compare", reverse("design-compare", args=d) + f"?base={world['first']}&head=main"),
        ("proposal list", reverse("design-proposals", args=d)),
        ("proposal page", reverse("design-proposal", args=[*d, world["proposal"].number])),
        ("release page", reverse("design-tags", args=d)),
        ("lab page", reverse("lab-detail", args=[world["lab"].slug])),
        ("lab queue", reverse("print-queue", args=[world["lab"].slug])),
        ("print job page", reverse("print-job", args=[world["job"].pk])),
        ("my bookings", reverse("my-bookings")),
        ("my prints", reverse("my-print-jobs")),
        ("profile", reverse("profile", args=["bob"])),
        ("settings", reverse("account-settings")),
    ]


def test_no_page_scrolls_sideways_on_a_390_px_phone(small_page, log_in, world):
    page = small_page
    log_in("bob")
    too_wide = []
    for name, url in pages(world):
        answer = page.goto(url)
        assert answer is not None and answer.status == 200, (
            f"{name}: {url} answered {answer and answer.status}"
        )
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            culprits = page.evaluate(
                """(limit) => [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > limit + 1)
                    .slice(0, 5).map(e => e.tagName + '.' + e.className)""",
                PHONE["width"],
            )
            too_wide.append(f"{name} ({url}): {width} px wide; first too wide: {culprits}")
    assert not too_wide, "\n".join(too_wide)


def test_the_favicon_is_an_image_not_a_404(page):
    answer = page.goto("/favicon.ico")

    assert answer is not None and answer.status == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.request.redirected_from is not None  # /favicon.ico → the static SVG
