"""The submission's hand-written reads give what the ORM's querysets gave: the member's
role, the lab's print settings and prices in one statement, the compatible printers with
their machines in another, and nothing read twice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from machines.accounting import lab_prices, prices_from
from machines.models import LabMembership, MaterialPrice, Printer, PrintSettings
from machines.printing import selectors as ps
from machines.printing import services as printing
from machines.selectors import lab_role
from tests.factories import UserFactory
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import gcode_upload, make_printer

pytestmark = pytest.mark.django_db


def _settings_values(row: PrintSettings) -> dict:
    return {f.attname: getattr(row, f.attname) for f in PrintSettings._meta.concrete_fields}


def _orm_reads(lab, user):
    settings_row = ps.print_settings_of(lab)
    return (
        lab_role(lab, user),
        _settings_values(settings_row),
        not settings_row._state.adding,
        lab_prices(lab),
    )


def _reads(lab, user):
    found = ps.submission_reads(lab, user)
    prices = prices_from(found.settings, found.material_prices)
    return found.role, _settings_values(found.settings), not found.settings._state.adding, prices


@pytest.mark.parametrize("membership", [None, "member", "pending", "manager"])
def test_the_role_settings_and_prices_are_those_the_orm_reads(lab, alice, membership):
    someone = UserFactory()
    if membership is not None:
        LabMembership.objects.create(
            lab=lab,
            user=someone,
            role="manager" if membership == "manager" else "member",
            status="pending" if membership == "pending" else "active",
        )
    # No settings row yet: the unsaved defaults, as print_settings_of gives them.
    assert _reads(lab, someone) == _orm_reads(lab, someone)
    assert ps.submission_reads(lab, someone).settings._state.adding
    printing.print_settings_update(
        lab=lab,
        actor=alice,
        requires_approval=True,
        max_active_jobs=3,
        weekly_print_minutes=600,
        currency="CHF",
        price_per_job="1.50",
        price_per_machine_hour="2.25",
        credits_enabled=True,
        overrun_tolerance_percent=15,
    )
    # Three prices, two of them for one material written in two ways (only the admin
    # could): the later by material wins, as in lab_prices.
    for material, price, density in (
        ("PLA", "0.0500", "1.240"),
        ("pla", "0.0700", "1.300"),
        ("PETG", "0.0612", "1.270"),
    ):
        MaterialPrice.objects.create(
            lab=lab, material=material, price_per_gram=Decimal(price), density_g_cm3=Decimal(density)
        )
    found = _reads(lab, someone)
    assert found == _orm_reads(lab, someone)
    assert found[3].per_gram == {"PLA": Decimal("0.0700"), "PETG": Decimal("0.0612")}
    assert found[1]["max_active_jobs"] == 3 and found[1]["price_per_job"] == Decimal("1.50")
    assert (
        found[0] == {None: None, "member": "member", "pending": "pending", "manager": "manager"}[membership]
    )


def test_the_settings_read_with_the_role_know_their_lab_without_reading_it(lab, alice, bob):
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    found = ps.submission_reads(lab, bob)
    with CaptureQueriesContext(connection) as statements:
        assert found.settings.lab is lab
    assert not statements.captured_queries


def test_the_compatible_printers_are_the_models_the_orm_reads(lab, alice):
    make_printer(
        lab, slug="b-mk4", capabilities={"materials": ["PLA", "PETG"], "nozzle_diameters_mm": [0.4, 0.6]}
    )
    make_printer(lab, slug="a-mini", volume=(180, 180, 180), material="PLA", nozzle_mm=Decimal("0.60"))
    make_printer(lab, slug="c-off", accepts_jobs=False)
    make_printer(lab, slug="d-abs", material="ABS")
    Printer.objects.filter(machine__slug="a-mini").update(state="idle", progress=12.5, bed_clear=False)
    expected = [
        p
        for p in ps.printers_of_lab(lab).filter(accepts_jobs=True, machine__kind="fdm_printer")
        if ps.printer_can_use(p, "PLA", Decimal("0.6"))
    ]
    found = ps.compatible_printers(lab, kind="fdm_printer", material="PLA", nozzle_mm=Decimal("0.6"))
    assert [p.machine.slug for p in found] == ["a-mini", "b-mk4"]
    for mine, theirs in zip(found, expected, strict=True):
        for model_row, orm_row in ((mine, theirs), (mine.machine, theirs.machine)):
            for field in type(orm_row)._meta.concrete_fields:
                assert getattr(model_row, field.attname) == getattr(orm_row, field.attname), field.name
                assert type(getattr(model_row, field.attname)) is type(getattr(orm_row, field.attname)), (
                    field.name
                )
        assert mine.profile_key == theirs.profile_key and mine.build_volume == theirs.build_volume
    with CaptureQueriesContext(connection) as statements:
        assert all(p.machine.lab is lab for p in found)
    assert not statements.captured_queries
    assert ps.compatible_printers(lab, kind="laser_cutter", material="PLA", nozzle_mm=None) == []


def test_a_small_gcode_is_submitted_with_two_reads_and_two_inserts(lab, bob, tmp_path):
    make_printer(lab)
    upload = gcode_upload(write_test_gcode(tmp_path / "part.gcode", moves=20))
    with CaptureQueriesContext(connection) as statements:
        printing.print_job_submit(lab=lab, owner=bob, upload=upload)
    kinds = [q["sql"].split(None, 1)[0].upper() for q in statements.captured_queries]
    # PostgreSQL: the member's limits are held with the job's write (checks.hold_member_limits).
    lock = ["SELECT"] if connection.features.has_select_for_update else []
    assert [k for k in kinds if k in ("SELECT", "INSERT", "UPDATE", "DELETE")] == [
        "SELECT",
        "SELECT",
        *lock,
        "INSERT",
        "INSERT",
    ], kinds
