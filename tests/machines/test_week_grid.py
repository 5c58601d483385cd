"""The lab's week grid (issue 22, part 6): blocks in proportion to time, closed hours
shaded, a "now" line, free time that links to a pre-filled booking form; opening hours in
one wording everywhere; capabilities with human labels; dates in the lab's language."""

from __future__ import annotations

import re
from datetime import date, time
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from machines import calendar_grid, labels, services
from machines.models import Booking, Machine
from tests.machines.conftest import NOW
from tests.machines.factories import at, book, make_lab, make_machine

MONDAY = date(2026, 3, 23)  # the week of NOW (tests/machines/conftest.py)


def blocks_of(grid, machine, day: int, kind: str):
    row = next(r for r in grid.rows if r.machine == machine)
    return [b for b in row.cells[day] if b.kind == kind]


def test_a_booking_sits_on_its_day_in_proportion_to_its_hours(lab, member, printer):
    """Open 09:00–21:00 (12 hours): a booking 12:00–15:00 starts a quarter in, a quarter long."""
    book(printer, member, "2026-03-24", "12:00", "15:00")

    grid = calendar_grid.week_grid(lab, MONDAY, now=NOW)

    assert (grid.first_hour, grid.last_hour) == (9, 21)
    (block,) = blocks_of(grid, printer, 1, Booking.Kind.BOOKING)
    assert (block.left, block.width) == (25.0, 25.0)
    assert block.start.hour == 12 and block.end.hour == 15  # the lab's wall clock
    assert blocks_of(grid, printer, 2, Booking.Kind.BOOKING) == []


def test_free_time_around_a_booking_links_to_the_form_with_machine_start_and_end(lab, member, printer):
    book(printer, member, "2026-03-24", "12:00", "15:00")

    grid = calendar_grid.week_grid(lab, MONDAY, now=NOW)

    before, after = blocks_of(grid, printer, 1, "free")
    assert (before.left, before.width, after.left, after.width) == (0.0, 25.0, 50.0, 50.0)
    url = urlsplit(after.href)
    assert url.path == reverse("machine-detail", args=["fablab", "prusa"])
    query = parse_qs(url.query)
    assert query["start"] == [at(lab, "2026-03-24", "15:00").isoformat()]
    assert query["end"] == [at(lab, "2026-03-24", "16:00").isoformat()]  # an hour, proposed


def test_closed_hours_are_shaded_on_a_day_with_shorter_hours(lab, alice, printer):
    services.lab_set_hours(
        lab=lab, actor=alice, hours=[(d, time(9), time(21)) for d in range(5)] + [(5, time(10), time(14))]
    )

    grid = calendar_grid.week_grid(lab, MONDAY, now=NOW)

    assert [(b.left, b.width) for b in blocks_of(grid, printer, 5, "closed")] == [
        (0.0, 8.333),
        (41.667, 58.333),
    ]
    assert [(b.left, b.width) for b in blocks_of(grid, printer, 6, "closed")] == [(0.0, 100.0)]
    assert blocks_of(grid, printer, 0, "closed") == []
    assert [d.hours for d in grid.days] == ["09:00–21:00"] * 5 + ["10:00–14:00", "closed"]


def test_now_is_a_line_on_today_only(lab, printer, frozen):
    frozen.move_to(at(lab, "2026-03-25", "15:00"))  # Wednesday, half way through 09:00–21:00

    grid = calendar_grid.week_grid(lab, MONDAY, now=at(lab, "2026-03-25", "15:00"))

    assert [d.now_left for d in grid.days] == [None, None, 50.0, None, None, None, None]
    assert [b.left for b in blocks_of(grid, printer, 2, "now")] == [50.0]
    assert blocks_of(grid, printer, 1, "now") == []
    assert grid.days[2].is_today


def test_the_past_is_not_offered_as_free_time(lab, printer, frozen):
    now = at(lab, "2026-03-25", "15:00")

    grid = calendar_grid.week_grid(lab, MONDAY, now=now)

    assert blocks_of(grid, printer, 1, "free") == []
    (today,) = blocks_of(grid, printer, 2, "free")
    assert today.start.hour == 15 and today.left == 50.0


def test_the_machine_page_fills_the_form_from_a_picked_range(lab, member, printer, client):
    client.force_login(member)
    start, end = at(lab, "2026-03-26", "14:00"), at(lab, "2026-03-26", "15:30")

    body = client.get(
        reverse("machine-detail", args=["fablab", "prusa"]),
        {"start": start.isoformat(), "end": end.isoformat()},
    ).content.decode()

    assert re.search(r'name="day" value="2026-03-26"', body)
    assert 'name="start_time" value="14:00"' in body and 'name="end_time" value="15:30"' in body


@pytest.mark.parametrize("start", ["", "yesterday", "2026-03-26T14:00", "2026-03-26T99:00:00+00:00"])
def test_a_picked_range_that_cannot_be_read_leaves_the_form_empty(lab, member, printer, client, start):
    client.force_login(member)

    response = client.get(
        reverse("machine-detail", args=["fablab", "prusa"]),
        {"start": start, "end": "2026-03-26T15:00:00+00:00"},
    )

    assert response.status_code == 200
    assert 'name="start_time" value=' not in response.content.decode()


def test_a_lab_open_all_day_says_open_24_hours_everywhere(alice, member, client, frozen):
    lab = make_lab(alice, slug="allday", hours="00:00-00:00")
    services.membership_join(lab=lab, user=member)
    make_machine(lab, slug="laser")
    client.force_login(alice)

    page = client.get(reverse("lab-detail", args=["allday"])).content.decode()
    manage = client.get(reverse("lab-manage", args=["allday"])).content.decode()

    assert page.count("open 24 hours") == 14  # the week's 7 day headings and 7 weekdays' hours
    for wrong in ("00:00–00:00", "00:00–24:00", "00:00-00:00"):
        assert wrong not in page and wrong not in manage
    # The hours form writes a span the way its help text asks for one.
    assert 'value="00:00-24:00"' in manage


def test_hours_text_is_one_wording():
    assert labels.hours_text([]) == "closed"
    assert labels.hours_text([(time(0), time(0))]) == "open 24 hours"
    assert labels.hours_text([(time(14), time(0)), (time(9), time(12))]) == "09:00–12:00, 14:00–24:00"


def test_capabilities_read_as_labels_not_keys(lab, member, client):
    make_machine(
        lab,
        slug="mk4",
        kind=Machine.Kind.FDM_PRINTER,
        capabilities={
            "materials": ["PLA", "PETG"],
            "nozzle_diameters_mm": [0.4, 0.6],
            "max_chamber_temp_c": 60,
        },
    )
    client.force_login(member)

    for url in (reverse("machine-detail", args=["fablab", "mk4"]), reverse("lab-detail", args=["fablab"])):
        body = unescape(client.get(url).content.decode())
        assert "Nozzle diameters (mm)" in body and "0.4, 0.6" in body and "PLA, PETG" in body
        assert "Max chamber temp (°C)" in body
        assert "nozzle_diameters_mm" not in body and "max_chamber_temp_c" not in body


def test_a_lab_defaults_to_the_hub_s_language(lab, settings):
    assert lab.locale == "" and lab.language == "en"
    settings.LANGUAGE_CODE = "de"
    assert lab.language == "de"


def test_a_french_lab_writes_french_dates_and_24_hour_times(lab, alice, member, printer, client):
    services.lab_update(lab=lab, actor=alice, locale="fr")
    book(printer, member, "2026-03-24", "14:00", "15:30")
    client.force_login(member)

    machine_page = unescape(client.get(reverse("machine-detail", args=["fablab", "prusa"])).content.decode())
    lab_page = unescape(client.get(reverse("lab-detail", args=["fablab"])).content.decode())

    assert "mardi 24 mars" in machine_page  # the free slots' days
    assert "lun 23" in lab_page and "23 mars – 29 mars 2026" in lab_page and "14:00–15:30" in lab_page
    assert "<dt>Lundi</dt><dd>09:00–21:00</dd>" in lab_page  # the opening hours' weekdays
    # The calendar feed's address carries a random token, which can hold the letters "PM".
    lab_page_text = re.sub(r"labs/feeds/[\w-]+", "labs/feeds/TOKEN", lab_page)
    assert not re.search(r"\b(?:AM|PM)\b|[ap]\.m\.", lab_page_text)
    # The booking form's inputs are written the French way, not the browser's.
    assert 'lang="fr"' in machine_page and 'placeholder="e.g. 31/12/2026"' in machine_page
    assert 'type="date"' not in machine_page


def test_a_french_lab_reads_a_day_written_the_french_way(lab, alice, member, printer, client):
    services.lab_update(lab=lab, actor=alice, locale="fr")
    client.force_login(member)

    response = client.post(
        reverse("machine-detail", args=["fablab", "prusa"]),
        {"day": "05/04/2026", "start_time": "14:00", "end_time": "15:00", "note": ""},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    booking = Booking.objects.get()
    assert booking.start == at(lab, "2026-04-05", "14:00")  # 5 April, not 4 May


def test_an_english_lab_still_reads_iso_days(lab, member, printer, client):
    client.force_login(member)

    response = client.post(
        reverse("machine-detail", args=["fablab", "prusa"]),
        {"day": "2026-03-26", "start_time": "14:00", "end_time": "15:00"},
    )

    assert response.status_code == 302
    assert Booking.objects.get().start == at(lab, "2026-03-26", "14:00")


def test_the_manager_sets_the_lab_s_language_on_its_settings_page(lab, alice, client):
    client.force_login(alice)
    data = {
        "action": "settings",
        "name": lab.name,
        "timezone": lab.timezone,
        "locale": "fr",
        "join_policy": lab.join_policy,
    }

    response = client.post(reverse("lab-manage", args=["fablab"]), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    lab.refresh_from_db()
    assert lab.locale == "fr" and lab.language == "fr"


def test_an_unknown_language_is_refused(lab, alice):
    from hub.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.lab_update(lab=lab, actor=alice, locale="klingon")


def test_feeds_offer_a_copy_button_and_a_webcal_link(lab, member, printer, client):
    client.force_login(member)

    for url in (
        reverse("lab-detail", args=["fablab"]),
        reverse("machine-detail", args=["fablab", "prusa"]),
        reverse("my-bookings"),
    ):
        body = client.get(url).content.decode()
        feed = re.search(r'href="webcal://testserver(/[^"]+)"', body)
        assert feed, url
        assert client.get(feed.group(1)).status_code == 200
        assert re.search(r'data-copy="#feed-\d+"', body)


def test_the_machine_page_lists_free_time_day_by_day_with_links_to_book(alice, member, client, frozen):
    """A lab open around the clock has one week-long free stretch: the page cuts it per day."""
    lab = make_lab(alice, slug="allday", hours="00:00-00:00")
    services.membership_join(lab=lab, user=member)
    make_machine(lab, slug="laser")
    client.force_login(member)
    url = reverse("machine-detail", args=["allday", "laser"])

    body = unescape(client.get(url).content.decode())

    assert body.count(">all day</a>") == 6  # Tuesday to Sunday; Monday is free from now on
    assert ">09:00–24:00</a>" in body  # NOW is 09:00 in Paris
    link = re.search(r'href="\?(start=[^"#]+)#book"', body)
    query = parse_qs(link.group(1))
    assert query["start"] == [NOW.isoformat()] and query["end"] == [at(lab, MONDAY, "10:00").isoformat()]
    form = client.get(url + "?" + link.group(1)).content.decode()
    assert 'name="start_time" value="09:00"' in form and 'name="end_time" value="10:00"' in form


def test_the_api_shows_and_sets_a_lab_s_language(lab, alice_api):
    url = reverse("api-lab-detail", args=["fablab"])
    assert alice_api.get(url).json()["locale"] == ""

    answer = alice_api.patch(url, {"locale": "fr"}, format="json")

    assert answer.status_code == 200 and answer.json()["locale"] == "fr"
    lab.refresh_from_db()
    assert lab.language == "fr"
    refused = alice_api.patch(url, {"locale": "klingon"}, format="json")
    assert refused.status_code == 400 and "klingon" in str(refused.json())
