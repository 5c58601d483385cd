"""What designs adds to a person's page (hub.profiles): their designs, the forks they
maintain, and what they made, each as the requester may see it. Registered in
`DesignsConfig.ready()`."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string

from designs import presenters, selectors
from hub.auth import viewer
from hub.models import User

MAX_DESIGNS_SHOWN = 50
MAX_MAKES_SHOWN = 60


def designs_profile_panel(request: HttpRequest, person: User) -> str:
    looking = viewer(request)
    designs = presenters.with_covers(
        list(selectors.designs_of_person(person, viewer=looking)[:MAX_DESIGNS_SHOWN])
    )
    originals = [
        design for design in designs if design.forked_from_id is None and not design.forked_from_name
    ]
    forks = [design for design in designs if design not in originals]
    visible_upstreams = selectors.upstreams_visible(forks, looking)
    makes = selectors.make_rows(selectors.makes_by_person(person, viewer=looking)[:MAX_MAKES_SHOWN])
    return render_to_string(
        "designs/_profile.html",
        {
            "person": person,
            "designs": originals,
            "forks": [(fork, fork.forked_from_id in visible_upstreams) for fork in forks],
            "make_rows": makes,
        },
        request=request,
    )
