"""What machines adds to a person's page (hub.profiles): the qualifications labs granted
them, each with its lab as the issuer and its signed record, and how many parts they
printed in labs' queues. Registered in `MachinesConfig.ready()`."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string

from hub import records
from hub.auth import viewer
from hub.models import User
from machines.printing.selectors import finished_prints_count
from machines.selectors import qualifications_of_person

MAX_QUALIFICATIONS_SHOWN = 100


def machines_profile_panel(request: HttpRequest, person: User) -> str:
    looking = viewer(request)
    qualifications = list(qualifications_of_person(person, viewer=looking)[:MAX_QUALIFICATIONS_SHOWN])
    # The source names hub.records gives a qualification (machines.records).
    credentials = records.credentials_by_source(f"machines.qualification:{q.pk}" for q in qualifications)
    rows = [(q, credentials.get(f"machines.qualification:{q.pk}")) for q in qualifications]
    prints = finished_prints_count(person, viewer=looking)
    if not rows and not prints:
        return ""
    return render_to_string(
        "machines/_profile.html",
        {"person": person, "qualifications": rows, "prints": prints},
        request=request,
    )
