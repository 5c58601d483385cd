from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from tests.machines.factories import add_member, make_lab, make_machine

# Monday 23 March 2026, 08:00 UTC (09:00 in Paris). Europe moves its clocks forward on
# Sunday 29 March at 02:00, so this week holds a daylight-saving change.
NOW = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    """Time stands still at NOW for the whole test."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def lab(alice, frozen):
    """Alice manages the Fablab (Paris, open every day 09:00–21:00); Bob is a member."""
    return make_lab(alice)


@pytest.fixture
def member(lab, bob):
    add_member(lab, bob)
    return bob


@pytest.fixture
def laser(lab):
    return make_machine(lab, slug="laser", requires_qualification=True)


@pytest.fixture
def printer(lab):
    from machines.models import Machine

    return make_machine(lab, slug="prusa", kind=Machine.Kind.FDM_PRINTER, name="Prusa MK4")
