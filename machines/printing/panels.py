"""What the print queue adds to other apps' pages: on a design's page, what was made from
it. Registered with designs' panel extension point in `MachinesConfig.ready()`."""

from __future__ import annotations

from django.template.loader import render_to_string

from designs.models import Design
from machines.printing.selectors import prints_of_design


def design_prints_panel(design: Design) -> str:
    """'Made N times in M labs' per commit of the design; "" if nothing was ever printed
    from it (the page then shows no empty panel)."""
    rows = prints_of_design(design)
    if not rows:
        return ""
    return render_to_string("machines/_design_prints.html", {"design": design, "rows": rows})
