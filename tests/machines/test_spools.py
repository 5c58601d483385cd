"""A lab's spools: managers keep the stock and load spools on printers (which sets what
the printer has loaded), prints take their grams off the loaded spool (never below 0),
and managers hear once when a spool runs low. Members read the stock; bad input is a 400,
another lab's spool or printer a 404."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from hub.exceptions import Conflict, PermissionDenied, ValidationError
from machines import spools
from machines.models import Printer, Spool
from machines.notifications import notifications_about
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.machines.factories import add_member, make_lab
from tests.printing.factories import make_printer

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice, bob):
    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    return lab


@pytest.fixture
def printer(lab):
    return make_printer(lab, name="Virtual MK4", slug="mk4")


def spool(lab, actor, **fields) -> Spool:
    fields.setdefault("material", "PETG")
    fields.setdefault("initial_g", 1000)
    return spools.spool_create(lab=lab, actor=actor, **fields)


def loaded(printer: Printer) -> tuple[str, str]:
    printer.refresh_from_db()
    return printer.material, printer.colour


# -- services ---------------------------------------------------------------------------------


def test_a_new_spool_is_full_and_named_in_the_queues_canonical_form(lab, alice):
    row = spool(lab, alice, material=" petg ", colour="Signal  Red")
    assert (row.material, row.colour, row.remaining_g, row.printer_id) == (
        "PETG",
        "signal red",
        Decimal("1000.0"),
        None,
    )


def test_only_managers_keep_the_stock(lab, bob):
    with pytest.raises(PermissionDenied):
        spool(lab, bob)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"initial_g": -1}, "cannot be negative"),
        ({"initial_g": 0}, "more than 0 g"),
        ({"initial_g": 10**7}, "more than any spool holds"),
        ({"initial_g": "NaN"}, "cannot be negative"),
        ({"initial_g": "lots"}, "must be a number"),
        ({"remaining_g": 1200}, "more than the spool's full weight"),
        ({"low_stock_g": -5}, "cannot be negative"),
        ({"material": "  "}, "Say which material"),
        ({"material": "X" * 41}, "at most 40"),
    ],
)
def test_impossible_spools_are_refused(lab, alice, fields, message):
    with pytest.raises(ValidationError, match=message):
        spool(lab, alice, **fields)


def test_loading_a_spool_sets_the_printers_material_and_unloads_the_one_before(lab, alice, printer):
    pla = spool(lab, alice, material="PLA", colour="black")
    petg = spool(lab, alice, material="PETG", colour="Red")
    spools.spool_load(spool=pla, printer=printer, actor=alice)
    assert loaded(printer) == ("PLA", "black")
    spools.spool_load(spool=petg, printer=printer, actor=alice)
    assert loaded(printer) == ("PETG", "red")
    pla.refresh_from_db()
    petg.refresh_from_db()
    assert (pla.printer_id, petg.printer_id) == (None, printer.pk)


def test_a_spool_moves_from_one_printer_to_another(lab, alice, printer):
    other = make_printer(lab, slug="xl")
    row = spool(lab, alice, material="ASA")
    spools.spool_load(spool=row, printer=printer, actor=alice)
    spools.spool_load(spool=row, printer=other, actor=alice)
    assert Spool.objects.get(pk=row.pk).printer_id == other.pk
    assert loaded(other)[0] == "ASA"


def test_a_spool_is_not_loaded_on_another_labs_printer(lab, alice, printer):
    carol = UserFactory(username="carol")
    theirs = make_printer(make_lab(carol, slug="other"), slug="theirs")
    with pytest.raises(ValidationError, match="its own lab"):
        spools.spool_load(spool=spool(lab, alice), printer=theirs, actor=alice)


def test_editing_a_loaded_spool_changes_the_printer_too(lab, alice, printer):
    row = spool(lab, alice, material="PLA")
    spools.spool_load(spool=row, printer=printer, actor=alice)
    spools.spool_update(spool=row, actor=alice, colour="Blue")
    assert loaded(printer) == ("PLA", "blue")


def test_an_archived_spool_leaves_its_printer_and_cannot_be_loaded_again(lab, alice, printer):
    row = spool(lab, alice)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    row = spools.spool_archive(spool=row, actor=alice)
    assert row.archived_at is not None and row.printer_id is None
    with pytest.raises(Conflict):
        spools.spool_load(spool=row, printer=printer, actor=alice)


# -- what prints use --------------------------------------------------------------------------


def test_a_print_takes_its_grams_off_the_loaded_spool(lab, alice, printer):
    row = spool(lab, alice, initial_g=1000)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    used = spools.spool_use(printer=printer, grams=12.34)
    assert used is not None and used.remaining_g == Decimal("987.7")


def test_a_spool_never_goes_below_zero(lab, alice, printer):
    row = spool(lab, alice, initial_g=1000, remaining_g=5)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    assert spools.spool_use(printer=printer, grams=40).remaining_g == 0


@pytest.mark.parametrize("grams", [None, -3, 0, float("nan"), float("inf")])
def test_grams_that_are_not_a_positive_number_take_nothing(lab, alice, printer, grams):
    row = spool(lab, alice)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    spools.spool_use(printer=printer, grams=grams)
    row.refresh_from_db()
    assert row.remaining_g == Decimal(1000)


def test_a_printer_without_a_spool_uses_nothing(printer):
    assert spools.spool_use(printer=printer, grams=10) is None


def low_notices(lab):
    return notifications_about(lab=lab).filter(subject__startswith="Low stock")


def test_managers_hear_once_when_a_spool_runs_low_and_again_after_a_refill(lab, alice, bob, printer):
    row = spool(lab, alice, material="PLA", initial_g=1000, remaining_g=150, low_stock_g=100)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    spools.spool_use(printer=printer, grams=30)
    assert not low_notices(lab).exists()
    spools.spool_use(printer=printer, grams=30)  # 90 g: below 100
    spools.spool_use(printer=printer, grams=30)
    notes = list(low_notices(lab))
    assert [n.recipient for n in notes] == [alice]  # the manager, once; not bob
    assert "60" not in notes[0].body and "90" in notes[0].body
    spools.spool_update(spool=row, actor=alice, remaining_g=1000)  # a refill
    row.refresh_from_db()
    assert row.low_stock_notified_at is None
    spools.spool_use(printer=printer, grams=950)
    assert low_notices(lab).count() == 2


def test_an_edit_that_leaves_a_spool_low_does_not_warn_again(lab, alice, printer):
    row = spool(lab, alice, initial_g=1000, remaining_g=110, low_stock_g=100)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    spools.spool_use(printer=printer, grams=20)
    spools.spool_update(spool=row, actor=alice, colour="green")
    spools.spool_use(printer=printer, grams=20)
    assert low_notices(lab).count() == 1


# -- API --------------------------------------------------------------------------------------


def url(lab, *rest) -> str:
    if not rest:
        return reverse("api-lab-spools", args=[lab.slug])
    spool_id, *action = rest
    name = f"api-lab-spool-{action[0]}" if action else "api-lab-spool"
    return reverse(name, args=[lab.slug, spool_id])


def test_members_read_the_stock_and_managers_write_it(lab, alice, bob, printer):
    alice_api, bob_api = client_for(alice), client_for(bob)
    made = alice_api.post(url(lab), {"material": "petg", "colour": "Red", "initial_g": "750"}, format="json")
    assert made.status_code == 201, made.json()
    body = made.json()
    assert (body["material"], body["remaining_g"], body["machine"], body["low"]) == (
        "PETG",
        "750.0",
        None,
        False,
    )
    assert bob_api.post(url(lab), {"material": "PLA", "initial_g": "1000"}, format="json").status_code == 403
    listed = bob_api.get(url(lab))
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == [body["id"]]
    load = alice_api.post(url(lab, body["id"], "load"), {"machine": "mk4"}, format="json")
    assert load.status_code == 200 and load.json()["machine"] == "mk4"
    assert loaded(printer) == ("PETG", "red")
    assert bob_api.post(url(lab, body["id"], "unload")).status_code == 403
    patched = alice_api.patch(url(lab, body["id"]), {"remaining_g": "40.5"}, format="json")
    assert patched.status_code == 200 and patched.json()["low"] is True
    assert alice_api.post(url(lab, body["id"], "unload")).json()["machine"] is None
    archived = alice_api.post(url(lab, body["id"], "archive"))
    assert archived.status_code == 200 and archived.json()["archived_at"]
    assert bob_api.get(url(lab)).json() == []


def test_people_outside_the_lab_see_no_spool(lab, alice):
    row = spool(lab, alice)
    outsider = client_for(UserFactory(username="dora"))
    assert outsider.get(url(lab)).status_code == 403
    assert outsider.get(url(lab, row.pk)).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"material": "PLA", "initial_g": "-1"},
        {"material": "PLA", "initial_g": "1e9"},
        {"material": "PLA", "initial_g": "12.345"},
        {"material": "PLA", "initial_g": "NaN"},
        {"material": "PLA", "initial_g": "Infinity"},
        {"material": "PLA", "initial_g": "abc"},
        {"material": "PLA", "initial_g": "1000", "remaining_g": "2000"},
        {"material": "PLA", "initial_g": "1000", "low_stock_g": "-1"},
        {"material": "", "initial_g": "1000"},
        {"material": "P" * 41, "initial_g": "1000"},
        {"initial_g": "1000"},
        [],
    ],
)
def test_bad_spools_are_a_400(lab, alice, body):
    answer = client_for(alice).post(url(lab), body, format="json")
    assert answer.status_code == 400, answer.content
    assert not Spool.objects.exists()


@pytest.mark.parametrize("body", [{}, {"remaining_g": "-0.1"}, {"remaining_g": "5000"}, {"initial_g": "0"}])
def test_bad_changes_are_a_400(lab, alice, body):
    row = spool(lab, alice)
    assert client_for(alice).patch(url(lab, row.pk), body, format="json").status_code == 400


def test_another_labs_spool_or_printer_is_a_404(lab, alice, printer):
    carol = UserFactory(username="carol")
    other = make_lab(carol, slug="other")
    make_printer(other, slug="theirs")
    theirs = spool(other, carol)
    mine = spool(lab, alice)
    api = client_for(alice)
    assert api.get(url(lab, theirs.pk)).status_code == 404
    assert api.post(url(lab, theirs.pk, "archive")).status_code == 404
    assert api.post(url(lab, mine.pk, "load"), {"machine": "theirs"}, format="json").status_code == 404
    assert api.post(url(lab, mine.pk, "load"), {"machine": 12}, format="json").status_code == 400
    assert api.post(url(lab, mine.pk, "load"), {}, format="json").status_code == 400
    assert api.get(reverse("api-lab-spool", args=[lab.slug, 10**12])).status_code == 404


def test_a_machine_outside_the_queue_takes_no_spool(lab, alice):
    from tests.machines.factories import make_machine

    make_machine(lab, slug="laser")
    row = spool(lab, alice)
    answer = client_for(alice).post(url(lab, row.pk, "load"), {"machine": "laser"}, format="json")
    assert answer.status_code == 404


# -- the page ---------------------------------------------------------------------------------


def test_the_spools_page_lists_the_stock_and_lets_managers_load_a_spool(client, lab, alice, bob, printer):
    row = spool(lab, alice, material="PETG", colour="red")
    client.force_login(alice)
    page = client.get(reverse("lab-spools", args=[lab.slug]))
    assert page.status_code == 200
    assert b"PETG" in page.content and b"Add a spool" in page.content
    assert b'href="/labs/fablab/spools/"' in page.content  # the lab header's tab
    answer = client.post(
        reverse("lab-spools", args=[lab.slug]), {"action": "load", "spool_id": row.pk, "machine": "mk4"}
    )
    assert answer.status_code == 302
    assert loaded(printer) == ("PETG", "red")
    added = client.post(
        reverse("lab-spools", args=[lab.slug]),
        {"action": "add", "new-material": "asa", "new-initial_g": "500", "new-low_stock_g": "50"},
    )
    assert added.status_code == 302 and Spool.objects.filter(material="ASA").exists()
    refused = client.post(
        reverse("lab-spools", args=[lab.slug]),
        {"action": "add", "new-material": "pla", "new-initial_g": "-5", "new-low_stock_g": "50"},
    )
    assert refused.status_code == 200 and not Spool.objects.filter(material="PLA").exists()
    client.force_login(bob)
    page = client.get(reverse("lab-spools", args=[lab.slug]))
    assert page.status_code == 200 and b"Add a spool" not in page.content
    forbidden = client.post(reverse("lab-spools", args=[lab.slug]), {"action": "archive", "spool_id": row.pk})
    assert forbidden.status_code == 403


def test_a_finished_print_takes_its_filament_off_the_loaded_spool(lab, alice, bob, printer, tmp_path):
    from machines.models import PrintGcode, PrintJob
    from machines.printing import dispatch
    from machines.printing import services as printing
    from tests.printing.factories import queued_job

    row = spool(lab, alice, material="PLA", initial_g=1000)
    spools.spool_load(spool=row, printer=printer, actor=alice)
    job = queued_job(lab, bob, tmp_path)
    PrintGcode.objects.filter(job=job).update(filament_g=12.5)
    [claimed] = dispatch.dispatch_tick()
    job = PrintJob.objects.get(pk=claimed)
    dispatch.print_job_send(job_id=job.pk, token=job.dispatch_token)
    printing.print_job_record(job=PrintJob.objects.get(pk=job.pk), actor=bob, outcome="started")
    printing.print_job_record(job=PrintJob.objects.get(pk=job.pk), actor=bob, outcome="finished")
    row.refresh_from_db()
    assert row.remaining_g == Decimal("987.5")


def test_a_material_changed_by_hand_unloads_the_spool_the_hub_thought_loaded(lab, alice):
    from decimal import Decimal

    from machines import spools
    from machines.models import Spool
    from machines.printing import services as printing
    from tests.printing.factories import make_printer

    printer = make_printer(lab, slug="hand")
    spool = spools.spool_create(lab=lab, actor=alice, material="PLA", colour="black", initial_g=Decimal(1000))
    spools.spool_load(spool=spool, printer=printer, actor=alice)
    printing.printer_configure(machine=printer.machine, actor=alice, material="PLA", colour="black")
    assert Spool.objects.get(pk=spool.pk).printer_id == printer.pk  # the same: still loaded
    printing.printer_configure(machine=printer.machine, actor=alice, material="PETG")
    assert Spool.objects.get(pk=spool.pk).printer_id is None
