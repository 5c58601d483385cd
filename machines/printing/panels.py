"""What the print queue adds to other apps' pages: on a design's page, what was made from
it. Registered with designs' panel extension point in `MachinesConfig.ready()`."""

from __future__ import annotations

from django.template.loader import render_to_string

from designs.models import Design
from designs.selectors import design_tags_by_commit
from machines.printing.selectors import prints_of_design


def design_prints_panel(design: Design) -> str:
    """Provenance per part: 'parts/cube.stl at v1.0 bef90b6f48: made 2 times in 1 lab
    (Fablab)', naming the file, the commit (and the tags on it) and the labs; "" if
    nothing was ever printed from the design (the page then shows no empty panel)."""
    rows = prints_of_design(design)
    if not rows:
        return ""
    tags = design_tags_by_commit(design)
    for row in rows:
        row["tags"] = tags.get(row["commit_sha"], [])
    return render_to_string("machines/_design_prints.html", {"design": design, "rows": rows})
