"""The print queue's REST API: submit (design file or G-code upload), follow, act, see the
lab's queue and printers, configure them; every route is in the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs.models import Design
from machines.models import PrintJob
from machines.printing import dispatch
from machines.printing import services as printing
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.machines.factories import add_member
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import analysed_design, box_stl, make_printer

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(lab):
    """The package's lab (conftest), with a manual printer."""
    make_printer(lab)
    return lab


@pytest.fixture
def bracket(bob):
    return analysed_design(bob, {"parts/cube.stl": box_stl()})


def test_a_member_sends_a_design_file_pinned_to_its_commit(lab, bob_api, bracket):
    design, sha = bracket
    response = bob_api.post(
        reverse("api-print-jobs"),
        {
            "lab": "fablab",
            "design": "bob/bracket",
            "path": "parts/cube.stl",
            "rev": "main",
            "material": "pla",
            "copies": 2,
            "notes": "for the jig",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["commit_sha"], body["rev"], body["material"]) == (
        "preparing",
        sha,
        "main",
        "PLA",
    )
    assert (body["design"], body["path"], body["copies"], body["lab"]) == (
        "bob/bracket",
        "parts/cube.stl",
        2,
        "fablab",
    )
    assert body["web_url"].endswith(f"/labs/jobs/{body['id']}/")


def test_a_member_uploads_gcode_as_multipart(lab, bob_api, tmp_path):
    path = write_test_gcode(tmp_path / "part.gcode")
    with path.open("rb") as f:
        response = bob_api.post(
            reverse("api-print-jobs"), {"lab": "fablab", "file": f, "material": "PLA"}, format="multipart"
        )
    assert response.status_code == 201, response.content
    assert response.json()["file_kind"] == "gcode" and len(response.json()["source_sha"]) == 64


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"lab": "fablab"}, 400, "Give either a design"),
        ({"lab": "fablab", "design": "bob/bracket"}, 400, "Say which file"),
        (
            {"lab": "nowhere", "design": "bob/bracket", "path": "parts/cube.stl"},
            404,
            "There is no lab 'nowhere'",
        ),
        ({"lab": "fablab", "design": "bracket", "path": "parts/cube.stl"}, 400, "owner/slug"),
        (
            {"lab": "fablab", "design": "bob/bracket", "path": "parts/cube.stl", "priority": 3},
            403,
            "priority above",
        ),
        (
            {"lab": "fablab", "design": "bob/bracket", "path": "parts/cube.stl", "material": "ABS"},
            400,
            "in ABS",
        ),
    ],
)
def test_a_bad_submission_gets_a_message_a_person_can_act_on(lab, bob_api, bracket, payload, status, message):
    response = bob_api.post(reverse("api-print-jobs"), payload, format="json")
    assert response.status_code == status, response.content
    assert message in str(response.json())


def test_a_private_design_of_someone_else_is_not_found(lab, alice, bob_api):
    design, _ = analysed_design(alice, {"a.stl": box_stl()}, slug="secret")
    Design.objects.filter(pk=design.pk).update(visibility=Design.Visibility.PRIVATE)
    response = bob_api.post(
        reverse("api-print-jobs"), {"lab": "fablab", "design": "alice/secret", "path": "a.stl"}, format="json"
    )
    assert response.status_code == 404


def test_a_read_only_token_cannot_submit(lab, bob, bracket):
    response = client_for(bob, scope="read").post(
        reverse("api-print-jobs"),
        {"lab": "fablab", "design": "bob/bracket", "path": "parts/cube.stl"},
        format="json",
    )
    assert response.status_code == 403


def test_a_job_is_seen_by_its_owner_and_the_labs_managers_only(lab, bob, alice_api, bob_api, bracket):
    job = printing.print_job_submit(lab=lab, owner=bob, design=bracket[0], path="parts/cube.stl")
    carol = UserFactory(username="carol")
    add_member(lab, carol)
    url = reverse("api-print-job", args=[job.pk])
    assert bob_api.get(url).status_code == 200
    assert alice_api.get(url).status_code == 200
    assert client_for(carol).get(url).status_code == 404


def test_members_see_the_queue_briefly_and_managers_in_full(
    lab, bob, alice_api, bob_api, bracket, django_assert_max_num_queries
):
    for _ in range(3):
        printing.print_job_submit(lab=lab, owner=bob, design=bracket[0], path="parts/cube.stl")
    url = reverse("api-lab-print-jobs", args=["fablab"])
    with django_assert_max_num_queries(8):
        brief = bob_api.get(url).json()
    assert brief["count"] == 3 and "commit_sha" not in brief["results"][0]
    full = alice_api.get(url, {"open": "true"}).json()
    assert full["count"] == 3 and full["results"][0]["commit_sha"] == bracket[1]
    stranger = client_for(UserFactory(username="carol"))
    assert stranger.get(url).status_code == 403


def test_listing_my_jobs_takes_a_fixed_number_of_queries(
    lab, bob, bob_api, bracket, django_assert_max_num_queries
):
    for _ in range(5):
        printing.print_job_submit(lab=lab, owner=bob, design=bracket[0], path="parts/cube.stl")
    with django_assert_max_num_queries(6):
        response = bob_api.get(reverse("api-print-jobs"))
    assert response.json()["count"] == 5


def dispatched(job, capture) -> None:
    printing.print_job_prepare(job_id=job.pk)
    with capture(execute=True):
        assert dispatch.dispatch_tick() == [job.pk]
    job.refresh_from_db()
    assert job.status == PrintJob.Status.AWAITING_OPERATOR


def test_the_operator_flow_and_the_bed_confirmation_through_the_api(
    lab, alice_api, bob, bob_api, tmp_path, django_capture_on_commit_callbacks
):
    from tests.printing.factories import gcode_upload

    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "p.gcode"))
    )
    dispatched(job, django_capture_on_commit_callbacks)
    assert alice_api.post(reverse("api-print-job-started", args=[job.pk])).json()["status"] == "printing"
    assert (
        bob_api.post(reverse("api-print-job-finished", args=[job.pk])).json()["status"] == "awaiting_removal"
    )
    printers = bob_api.get(reverse("api-lab-printers", args=["fablab"])).json()
    assert printers[0]["bed_clear"] is False and printers[0]["current_job"]["id"] == job.pk
    response = bob_api.post(reverse("api-machine-printer-cleared", args=["fablab", "mk4"]))
    assert response.status_code == 200 and response.json()["bed_clear"] is True
    assert bob_api.get(reverse("api-print-job", args=[job.pk])).json()["status"] == "done"
    conflict = bob_api.post(reverse("api-print-job-cancel", args=[job.pk]))
    assert conflict.status_code == 409 and conflict.json()["detail"] == "This job is already done."
    gcode = bob_api.get(reverse("api-print-job-gcode", args=[job.pk]))
    assert gcode.status_code == 200 and b"; fabhub test print" in b"".join(gcode.streaming_content)


def test_managers_configure_printers_and_the_queue(lab, alice_api, bob_api):
    url = reverse("api-machine-printer", args=["fablab", "mk4"])
    assert bob_api.put(url, {"material": "PETG"}, format="json").status_code == 403
    response = alice_api.put(
        url, {"material": "petg", "colour": "Orange ", "after_print": "auto"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["material"], response.json()["colour"], response.json()["after_print"]) == (
        "PETG",
        "orange",
        "auto",
    )
    refused = alice_api.put(url, {"slicer_profile": "post_process = rm -rf /\n"}, format="json")
    assert refused.status_code == 400 and "post_process" in refused.json()["detail"]
    settings_url = reverse("api-lab-print-settings", args=["fablab"])
    assert (
        alice_api.patch(settings_url, {"max_active_jobs": 3, "slicer": "none"}, format="json").status_code
        == 200
    )
    body = bob_api.get(settings_url).json()
    assert (body["max_active_jobs"], body["slicer"], body["slicer_installed"]) == (3, "none", False)
    assert bob_api.get(reverse("api-machine-printer", args=["fablab", "nope"])).status_code == 404


def test_provenance_records_and_counts_per_commit(
    lab, alice, bob, bob_api, api, bracket, django_capture_on_commit_callbacks
):
    design, sha = bracket
    job = printing.print_job_submit(lab=lab, owner=bob, design=design, path="parts/cube.stl")
    dispatched(job, django_capture_on_commit_callbacks)
    printing.print_job_record(job=job, actor=alice, outcome="started")
    printing.print_job_record(job=job, actor=alice, outcome="finished")
    records = api.get(reverse("api-print-records"), {"design": "bob/bracket"}).json()
    assert records["count"] == 1
    assert (records["results"][0]["commit_sha"], records["results"][0]["result"]) == (sha, "done")
    counts = api.get(reverse("api-print-records-by-commit"), {"design": "bob/bracket"}).json()
    assert counts == [{"commit_sha": sha, "made": 1, "failed": 0, "labs": 1}]
    Design.objects.filter(pk=design.pk).update(visibility=Design.Visibility.PRIVATE)
    assert api.get(reverse("api-print-records"), {"design": "bob/bracket"}).json()["count"] == 0
    assert api.get(reverse("api-print-records-by-commit"), {"design": "bob/bracket"}).status_code == 404
    assert bob_api.get(reverse("api-print-records"), {"commit": sha[:8]}).json()["count"] == 1


def test_the_schema_documents_the_print_queue(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    paths = set(schema["paths"])
    for route in (
        "/api/print-jobs/",
        "/api/print-jobs/{job_id}/cancel/",
        "/api/labs/{lab}/printers/",
        "/api/labs/{lab}/machines/{machine}/printer/cleared/",
        "/api/print-records/by-commit/",
    ):
        assert route in paths, route
    submit = schema["paths"]["/api/print-jobs/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(submit)
