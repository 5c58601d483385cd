"""iCalendar feeds per lab, machine and member, behind unguessable token URLs."""

from __future__ import annotations

from datetime import UTC, date, datetime

import icalendar
import pytest
from django.urls import reverse

from machines import services
from tests.conftest import client_for
from tests.machines.factories import book

pytestmark = pytest.mark.django_db

FRIDAY = date(2026, 3, 27)


def parse(response) -> icalendar.Calendar:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    body = response.content.decode()
    assert all(len(line.encode()) <= 75 for line in body.split("\r\n")), "lines must be folded at 75 octets"
    assert body.endswith("END:VCALENDAR\r\n")
    return icalendar.Calendar.from_ical(response.content)


def events(calendar: icalendar.Calendar) -> list:
    return list(calendar.walk("VEVENT"))


def feed_url(client, name: str, *args) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200, response.content
    return response.json()["url"]


def test_a_member_s_feed_lists_their_bookings_with_utc_times(lab, member, printer, client):
    booking = book(printer, member, FRIDAY, "10:00", "11:30", note="Laser-cut box, with lid; v2")
    url = feed_url(client_for(member), "api-my-feed")
    calendar = parse(client.get(url))
    assert calendar["VERSION"] == "2.0" and "fabhub" in str(calendar["PRODID"])
    [event] = events(calendar)
    assert event["UID"] == f"booking-{booking.pk}@testserver"
    assert event.decoded("DTSTART") == datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2026, 3, 27, 10, 30, tzinfo=UTC)
    assert str(event["SUMMARY"]) == "Prusa MK4 (Fablab)"
    assert str(event["DESCRIPTION"]) == "Laser-cut box, with lid; v2"
    assert str(event["STATUS"]) == "CONFIRMED"


def test_lab_and_machine_feeds_show_busy_slots_without_names(lab, alice, member, printer, laser, client):
    book(printer, member, FRIDAY, "10:00", "11:00", note="private note")
    services.maintenance_block(
        machine=laser,
        actor=alice,
        start=datetime(2026, 3, 27, 8, tzinfo=UTC),
        end=datetime(2026, 3, 27, 12, tzinfo=UTC),
        reason="Mirror cleaning",
    )
    lab_calendar = parse(client.get(feed_url(client_for(member), "api-lab-feed", "fablab")))
    summaries = sorted(str(e["SUMMARY"]) for e in events(lab_calendar))
    assert summaries == ["Laser: maintenance", "Prusa MK4: booked"]
    assert b"bob" not in client.get(feed_url(client_for(member), "api-lab-feed", "fablab")).content
    assert b"private note" not in client.get(feed_url(client_for(member), "api-lab-feed", "fablab")).content
    machine_calendar = parse(client.get(feed_url(client_for(member), "api-machine-feed", "fablab", "laser")))
    [event] = events(machine_calendar)
    assert str(event["DESCRIPTION"]) == "Mirror cleaning"


def test_a_long_unicode_name_is_folded_without_breaking_characters(lab, member, printer, client):
    book(printer, member, FRIDAY, "10:00", "11:00", note="Découpe d’une éolienne — " * 12)
    calendar = parse(client.get(feed_url(client_for(member), "api-my-feed")))
    assert str(events(calendar)[0]["DESCRIPTION"]) == ("Découpe d’une éolienne — " * 12)


def test_a_wrong_token_is_a_404_and_a_reset_token_stops_working(lab, member, printer, client):
    url = feed_url(client_for(member), "api-my-feed")
    assert client.get(url.replace(url.rsplit("/", 1)[1], "not-a-real-token.ics")).status_code == 404
    new = client_for(member).post(reverse("api-my-feed")).json()["url"]
    assert new != url
    assert client.get(url).status_code == 404
    assert client.get(new).status_code == 200
    token = new.rsplit("/", 1)[1].removesuffix(".ics")
    assert len(token) >= 40  # 256 random bits


def test_a_lab_feed_stops_working_when_its_owner_leaves_the_lab(lab, member, client):
    url = feed_url(client_for(member), "api-lab-feed", "fablab")
    services.membership_remove(lab=lab, actor=member, user=member)
    assert client.get(url).status_code == 404


def test_only_members_get_a_lab_feed(lab, bob):
    response = client_for(bob).get(reverse("api-lab-feed", args=["fablab"]))
    assert response.status_code == 403


# No NUL here: PostgreSQL text cannot hold one, and every surface refuses it before it
# is stored (tests/machines/test_bad_input.py); the other control characters can be stored.
HOSTILE_TEXT = "Line one\rINJECTED:1\r\nBEGIN:VEVENT\nsemi;colon, comma \\ back\x07bell\x1bescape\ttab"


def raw_lines(response) -> list[str]:
    body = response.content.decode()
    assert "\r" not in body.replace("\r\n", ""), "a bare CR would start a new line in some clients"
    assert "\n" not in body.replace("\r\n", ""), "a bare LF would start a new line in some clients"
    return body.split("\r\n")


def test_every_text_value_is_escaped_so_no_control_character_starts_a_line(lab, member, printer, client):
    lab.name = "Fab;lab, Paris\r\nX-EVIL:1"
    lab.address = "1 rue du Four\rINJECTED:1\n75006 Paris"
    lab.save()
    printer.name = "Prusa\rMK4"
    printer.save()
    book(printer, member, FRIDAY, "10:00", "11:00", note=HOSTILE_TEXT)

    response = client.get(feed_url(client_for(member), "api-my-feed"))
    lines = raw_lines(response)
    unfolded = "\r\n".join(lines).replace("\r\n ", "")
    property_names = {line.split(":", 1)[0].split(";", 1)[0] for line in unfolded.split("\r\n") if line}
    assert not property_names & {"INJECTED", "X-EVIL"}, property_names
    assert unfolded.split("\r\n").count("BEGIN:VEVENT") == 1
    # No control character other than HTAB survives (RFC 5545 §3.3.11: TEXT has no CONTROL).
    assert not [c for c in unfolded.replace("\r\n", "") if ord(c) < 32 and c != "\t"]

    [event] = events(parse(response))
    assert str(event["DESCRIPTION"]) == (
        "Line one\nINJECTED:1\nBEGIN:VEVENT\nsemi;colon, comma \\ backbellescape\ttab"
    )
    assert str(event["SUMMARY"]) == "Prusa\nMK4 (Fab;lab, Paris\nX-EVIL:1)"
    assert str(event["LOCATION"]) == "Fab;lab, Paris\nX-EVIL:1, 1 rue du Four, INJECTED:1, 75006 Paris"


def test_long_lines_are_folded_at_75_octets_and_unfold_to_the_same_text(lab, member, printer, client):
    note = "é" * 40 + ";" * 40 + "x" * 200 + "漢字" * 30
    book(printer, member, FRIDAY, "10:00", "11:00", note=note)
    response = client.get(feed_url(client_for(member), "api-my-feed"))
    lines = raw_lines(response)
    assert max(len(line.encode()) for line in lines) <= 75
    assert [line for line in lines if line.startswith(" ")], "the long note must be folded"
    [event] = events(parse(response))
    assert str(event["DESCRIPTION"]) == note
