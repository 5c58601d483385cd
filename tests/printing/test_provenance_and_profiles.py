"""What the print queue shows elsewhere: the design page's provenance line names the part,
the version (commit and tag) and the labs; a person's profile shows their qualifications
with the lab that granted them and how many parts they printed."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from designs import services as design_services
from machines.printing import dispatch
from machines.printing import services as printing
from machines.services import qualifications
from tests.printing.factories import analysed_design, box_stl, make_printer

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(lab):
    """The package's lab (conftest), with a manual printer."""
    make_printer(lab)
    return lab


@pytest.fixture
def job(lab, bob, django_capture_on_commit_callbacks):
    """Bob's cube, sliced and handed to the (manual) printer."""
    design, _ = analysed_design(bob, {"parts/cube.stl": box_stl()})
    job = printing.print_job_submit(lab=lab, owner=bob, design=design, path="parts/cube.stl")
    printing.print_job_prepare(job_id=job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.dispatch_tick()
    job.refresh_from_db()
    return job


def finish(job, actor) -> None:
    printing.print_job_record(job=job, actor=actor, outcome="started")
    printing.print_job_record(job=job, actor=actor, outcome="finished")


def test_the_provenance_line_names_the_part_the_version_with_its_tag_and_the_lab(client, job, alice, bob):
    design_services.tag_create(design=job.design, user=bob, name="v1.0", target=None, notes="")
    finish(job, alice)
    page = client.get(reverse("design-detail", args=["bob", job.design.slug])).content.decode()
    assert ">parts/cube.stl</a> at " in page
    assert (
        f'<span class="tag">v1.0</span> <a class="mono" href="/bob/{job.design.slug}/commit/{job.commit_sha}/">'
        in page
    )
    assert 'made 1 time in 1 lab (<a href="/labs/' in page and f">{job.lab.name}</a>)" in page


def test_a_profile_shows_qualifications_with_their_lab_and_the_prints_count(client, job, lab, alice, bob):
    finish(job, alice)
    qualifications.qualification_record(
        lab=lab, actor=alice, member=bob, trained_on=date(2026, 1, 10), kind="fdm_printer"
    )
    page = client.get(reverse("profile", args=["bob"])).content.decode()
    assert "Qualifications" in page and f">{lab.name}</a>" in page and "issued by" in page
    assert "Signed record" in page
    assert "Printed in labs&#x27; queues: 1 part." in page or "Printed in labs' queues: 1 part." in page
