"""Model.from_db with some of a model's fields fills them in the model's field order, not
in the order of the names given: the hand-written reads that build models from rows
(the hot paths of the dispatcher, where-to-make and history) must name their fields in
that order, or values land in the wrong fields without an error."""

from __future__ import annotations

import pytest

from designs import selectors as design_selectors
from designs.models import Design
from machines import where
from machines.models import Machine, Printer, PrintGcode
from machines.printing import dispatch


def attname(model, name: str) -> str:
    return model._meta.pk.attname if name == "pk" else model._meta.get_field(name).attname


@pytest.mark.parametrize(
    ("model", "names"),
    [
        (PrintGcode, dispatch.GCODE_FIELDS),
        (Machine, where._STAND_IN_MACHINE),
        (Printer, where._STAND_IN_PRINTER),
        (Design, design_selectors._HISTORY_FIELDS),
    ],
    ids=["dispatch-gcode", "where-machine", "where-printer", "history-design"],
)
def test_hand_read_fields_are_named_in_the_models_order(model, names):
    named = [attname(model, name) for name in names]
    assert named == [f.attname for f in model._meta.concrete_fields if f.attname in named]
