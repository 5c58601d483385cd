"""Editing a machine writes what was edited and nothing else, under its timeline lock."""

from __future__ import annotations

import pytest

from hub.exceptions import ValidationError
from machines import services
from machines.models import Machine

pytestmark = pytest.mark.django_db


def test_an_edit_from_a_stale_copy_leaves_the_status_set_meanwhile(lab, alice, printer):
    """A manager opened the edit form before another put the machine in maintenance: the
    edit's save must not put it back in service."""
    form_copy = Machine.objects.get(pk=printer.pk)
    services.machine_set_status(machine=printer, actor=alice, status="maintenance", reason="Nozzle swap")

    services.machine_update(machine=form_copy, actor=alice, name="Prusa MK4 (0.6 nozzle)")

    fresh = Machine.objects.get(pk=printer.pk)
    assert (fresh.name, fresh.status) == ("Prusa MK4 (0.6 nozzle)", "maintenance")


def test_a_rule_change_moves_the_timeline_version_on(lab, alice, printer):
    """The version is what a booking checked before the change is sent back by
    (timeline_lock_insert): a rule edit must move it, as closures and hours do."""
    before = Machine.objects.get(pk=printer.pk).timeline_version

    services.machine_update(machine=printer, actor=alice, requires_qualification=True)

    after = Machine.objects.get(pk=printer.pk)
    assert after.requires_qualification and after.timeline_version > before


def test_a_refused_edit_writes_nothing(lab, alice, printer):
    before = Machine.objects.get(pk=printer.pk)
    with pytest.raises(ValidationError, match="connection URL"):
        services.machine_update(
            machine=printer, actor=alice, name="Renamed", connection_url="ftp://x", connection_api_key="k"
        )

    after = Machine.objects.get(pk=printer.pk)
    assert (after.name, after.timeline_version) == (before.name, before.timeline_version)
