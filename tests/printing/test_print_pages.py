"""The print queue's pages: the lab's queue with printer tiles, my jobs, a job, sending a
part from a design's file page, and what a design's page says was made from it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from machines.models import Printer, PrintJob
from machines.printing import dispatch
from machines.printing import services as printing
from tests.factories import UserFactory
from tests.machines.factories import add_member
from tests.printing.factories import analysed_design, box_stl, make_printer

pytestmark = pytest.mark.django_db
S = PrintJob.Status


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


def page_urls(job) -> list[str]:
    return [
        reverse("print-queue", args=["fablab"]),
        reverse("my-print-jobs"),
        reverse("print-job-new"),
        reverse("print-job", args=[job.pk]),
        reverse("design-detail", args=["bob", "bracket"]),
        reverse("design-blob", args=["bob", "bracket", "parts/cube.stl"]),
        reverse("lab-detail", args=["fablab"]),
    ]


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_every_print_page_renders_for_the_owner_and_a_manager(client, job, who, alice, bob):
    client.force_login(alice if who == "alice" else bob)
    for url in page_urls(job):
        response = client.get(url)
        assert response.status_code == 200, url


def test_only_managers_open_the_queue_and_printer_settings(client, job, alice, bob):
    urls = [reverse("print-settings", args=["fablab"]), reverse("printer-edit", args=["fablab", "mk4"])]
    client.force_login(bob)
    assert [client.get(u).status_code for u in urls] == [403, 403]
    client.force_login(alice)
    assert [client.get(u).status_code for u in urls] == [200, 200]


def test_anonymous_visitors_see_the_printers_but_not_the_jobs(client, job):
    response = client.get(reverse("print-queue", args=["fablab"]))
    assert response.status_code == 200
    assert b"MK4" in response.content and b"cube.stl" not in response.content
    assert client.get(reverse("print-job", args=[job.pk])).status_code == 302  # to the login page


def test_another_member_sees_the_queue_but_not_the_job_page(client, lab, job):
    carol = UserFactory(username="carol")
    add_member(lab, carol)
    client.force_login(carol)
    assert b"cube.stl" in client.get(reverse("print-queue", args=["fablab"])).content
    assert client.get(reverse("print-job", args=[job.pk])).status_code == 404


def test_a_part_is_sent_from_its_file_page(client, lab, bob):
    design, sha = analysed_design(bob, {"parts/cube.stl": box_stl()}, slug="clip")
    client.force_login(bob)
    blob = client.get(reverse("design-blob", args=["bob", "clip", "parts/cube.stl"])).content.decode()
    # "Print at a lab" opens the chooser (tests/machines/test_where.py), which sends it on.
    chooser = f"{reverse('where')}?design=bob/clip&amp;path=parts/cube.stl&amp;rev={sha}"
    assert chooser in blob
    labs = client.get(chooser.replace("&amp;", "&")).content.decode()
    link = f"{reverse('print-job-new')}?design=bob/clip&amp;path=parts/cube.stl&amp;rev={sha}&amp;lab=fablab"
    assert link in labs
    form = client.get(link.replace("&amp;", "&"))
    assert f'value="{sha}"' in form.content.decode()
    response = client.post(
        reverse("print-job-new"),
        {
            "lab": "fablab",
            "design": "bob/clip",
            "path": "parts/cube.stl",
            "rev": sha,
            "material": "PLA",
            "copies": 1,
            "priority": 1,
            "machine_kind": "fdm_printer",
        },
    )
    job = PrintJob.objects.get(design=design)
    assert response.status_code == 302 and response["Location"] == reverse("print-job", args=[job.pk])
    assert job.commit_sha == sha


def test_a_refusal_lands_in_the_form(client, lab, bob):
    analysed_design(bob, {"parts/cube.stl": box_stl()}, slug="clip")
    client.force_login(bob)
    response = client.post(
        reverse("print-job-new"),
        {
            "lab": "fablab",
            "design": "bob/clip",
            "path": "parts/cube.stl",
            "material": "NYLON",
            "copies": 1,
            "priority": 1,
            "machine_kind": "fdm_printer",
        },
    )
    assert response.status_code == 200
    assert "No FDM printer of Fablab takes queued jobs in NYLON." in response.content.decode()


def test_the_buttons_run_the_operator_flow_and_a_refusal_comes_back_as_a_message(client, job, alice, bob):
    client.force_login(alice)
    page = reverse("print-job", args=[job.pk])
    response = client.post(reverse("print-job-action", args=[job.pk, "resume"]), follow=True)
    assert response.redirect_chain[-1][0] == page
    assert [str(m) for m in response.context["messages"]] == [
        "This job is waiting for an operator to start it: it cannot be resumed."
    ]
    client.post(reverse("print-job-action", args=[job.pk, "started"]))
    client.post(reverse("print-job-action", args=[job.pk, "finished"]))
    job.refresh_from_db()
    assert job.status == S.AWAITING_REMOVAL
    queue = client.get(reverse("print-queue", args=["fablab"])).content.decode()
    assert "Bed not clear:" in queue and "cube.stl (bob) is ready to collect." in queue
    client.force_login(bob)
    client.post(reverse("printer-cleared", args=["fablab", "mk4"]), {"next": page})
    job.refresh_from_db()
    assert job.status == S.DONE and Printer.objects.get().bed_clear
    assert client.post(reverse("print-job-action", args=[job.pk, "explode"])).status_code == 404


def test_the_design_page_says_how_often_each_version_was_made(client, job, alice, bob):
    printing.print_job_record(job=job, actor=alice, outcome="started")
    printing.print_job_record(job=job, actor=alice, outcome="finished")
    page = client.get(reverse("design-detail", args=["bob", "bracket"])).content.decode()
    assert "Made in labs" in page and f"{job.commit_sha[:10]}</a>:" in page
    assert "made 1 time in 1 lab" in page


def test_a_manager_configures_a_printer_from_its_page(client, lab, alice):
    client.force_login(alice)
    response = client.post(
        reverse("printer-edit", args=["fablab", "mk4"]),
        {
            "accepts_jobs": "on",
            "material": "petg",
            "colour": "",
            "nozzle_mm": "0.6",
            "after_print": "confirm",
            "profile_name": "MK4 PETG",
            "slicer_profile": "layer_height = 0.25\n",
            "serial_port": "",
            "baudrate": "",
        },
    )
    assert response.status_code == 302
    printer = Printer.objects.get()
    assert (printer.material, str(printer.nozzle_mm), printer.profile_name) == ("PETG", "0.60", "MK4 PETG")
