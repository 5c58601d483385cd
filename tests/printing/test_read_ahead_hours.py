"""The dispatcher reads the labs' opening hours and closures in one statement each for
all of them (`waiting.Floor.read_ahead`): the windows it finds are those read lab by lab."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.utils import timezone

from machines import services
from machines.models import Closure
from machines.printing.waiting import Floor
from machines.selectors import weekly_hours
from tests.machines.factories import make_lab

pytestmark = pytest.mark.django_db


def test_the_hours_and_closures_read_ahead_for_many_labs_are_each_labs_own(alice):
    split = make_lab(alice, slug="split", tz="America/New_York", hours="09:00-12:00")
    services.lab_set_hours(
        lab=split,
        actor=alice,
        hours=[
            (0, time(9), time(12)),
            (0, time(14), time(0)),
            (3, time(7, 30), time(19, 45)),
            (6, time(0), time(0)),
        ],
    )
    evenings = make_lab(alice, slug="evenings", hours="18:00-23:30")
    always = make_lab(alice, slug="always", hours="00:00-00:00")
    labs = [split, evenings, always]
    now = timezone.now()
    for lab, hours in ((split, 2), (split, 40), (evenings, 5)):
        Closure.objects.create(
            lab=lab, start=now + timedelta(hours=hours), end=now + timedelta(hours=hours + 3)
        )
    Closure.objects.create(lab=evenings, start=now - timedelta(days=3), end=now - timedelta(days=2))  # over
    ahead = Floor.at(now=now, rows={})
    ahead.read_ahead(labs=labs, owner_ids=set())
    for lab in labs:
        assert ahead._hours is not None and ahead._hours.get(lab.pk, []) == weekly_hours(lab)
        assert all(isinstance(t, time) for _, opens, closes in ahead._hours[lab.pk] for t in (opens, closes))
        assert [c.pk for c in ahead._closures.get(lab.pk, [])] == [
            c.pk for c in Closure.objects.filter(lab=lab, end__gt=now - timedelta(days=1)).order_by("start")
        ]
        # The same window as a floor that reads the lab alone.
        assert ahead.window_of(lab) == Floor.at(now=now, rows={}).window_of(lab)
