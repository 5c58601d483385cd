"""An account archive exported by one live hub is imported by another (issue 15).

Two independent hubs, each its own gunicorn, SQLite database and data directory, on plain
HTTP loopback; B trusts A's key through its operator's trust list. Everything goes
through the APIs a person would use (export, download, upload, follow, challenge,
authorise, claim); the hubs' disks and databases are only read, to compare what A had
with what B made of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.hub.test_records_between_hubs import LiveHub

pytestmark = pytest.mark.slow

WAIT_S = 120
KB = 1024

# Run on hub A: ada's designs (one with an LFS file, a branch and a release; a private
# one; a fork of cy's gauge), her proposal and comment on the gauge, a make of it, a
# qualification a lab gave her and a booking there; tokens for ada and for a mallory of A.
SET_UP_A = """
import io, json, os
from datetime import date, datetime, time, timedelta
from django.core.files.base import ContentFile
from django.utils import timezone
from designs import services
from designs.services.commits import Upload
from hub import services as hub_services
from hub.models import User
from hub.signing import signing_key_current
from machines import services as machines
from machines.models import Lab, Machine, OpeningHours

def commit(design, files, message, **kwargs):
    return services.design_commit(
        design=design, author=design.owner, message=message,
        uploads=[Upload(path=p, content=ContentFile(c, name=p)) for p, c in files.items()], **kwargs,
    )

grace = User.objects.create_user("grace", "grace@a.example", "not used")
ada = User.objects.create_user("ada", "ada@a.example", "not used", first_name="Ada")
cy = User.objects.create_user("cy", "cy@a.example", "not used")
mallory = User.objects.create_user("mallory", "mallory@a.example", "not used")

car = services.design_create(owner=ada, slug="car", title="Car", licence="CERN-OHL-S-2.0", summary="Four wheels")
big = os.urandom(6 * 1024)
commit(car, {"body.step": big, "README.md": b"# Car\\n"}, "Body")
services.branch_create(design=car, user=ada, name="dev")
commit(car, {"notes.txt": b"dev work\\n"}, "Notes", branch="dev")
services.tag_create(design=car, user=ada, name="v0.1", target=None, notes="First *release*")
commit(car, {"README.md": b"# Car, second\\n"}, "Second")
services.tag_create(design=car, user=ada, name="v0.2", target=None, notes="Second release")
services.design_update(design=car, tags=["vehicle", "kit"], okh_function="Drives")
secret = services.design_create(owner=ada, slug="secret", title="Secret", licence="MIT", visibility="private")
commit(secret, {"plan.txt": b"hidden\\n"}, "Plan")
gauge = services.design_create(owner=cy, slug="gauge", title="Gauge", licence="MIT")
commit(gauge, {"gauge.scad": b"cube(1);\\n"}, "Gauge")
fork = services.design_fork(design=gauge, user=ada)
commit(fork, {"gauge.scad": b"cube(2);\\n"}, "Bigger")
proposal = services.proposals.proposal_create(
    target=gauge, user=ada, source=fork, source_branch="main", title="Make it bigger"
)
services.proposals.proposal_comment(proposal=proposal, user=ada, body="Measured twice.")
services.make_create(design=gauge, maker=ada, commit_sha=gauge.repo.resolve("main"), where="Lyon")

lab = machines.lab_create(creator=grace, name="Lab A", slug="lab-a", timezone="Europe/Paris")
Lab.objects.filter(pk=lab.pk).update(approved_at=lab.created_at)
lab.refresh_from_db()
# Open all week, so the booking below is inside opening hours whenever the test runs.
lab.opening_hours.all().delete()
for weekday in range(7):
    OpeningHours.objects.create(lab=lab, weekday=weekday, opens=time(0, 0), closes=time(0, 0))
machines.membership_join(lab=lab, user=ada)
machines.qualification_record(
    lab=lab, actor=grace, member=ada, trained_on=date(2026, 1, 5), kind=Machine.Kind.FDM_PRINTER
)
printer = machines.machine_create(lab=lab, actor=grace, name="Mk4", slug="mk4", kind=Machine.Kind.FDM_PRINTER)
# A print through the queue on the manual driver (an operator records it), which the hub
# then records, and signs, as a print record.
from django.core.files.uploadedfile import SimpleUploadedFile
from hub.queue import wait_for_embedded_worker
from machines.printing import dispatch, services as printing
printing.printer_configure(machine=printer, actor=grace, profile_name="manual")
job = printing.print_job_submit(
    lab=lab, owner=ada, upload=SimpleUploadedFile("gauge.gcode", b"G28\\nG1 X10 Y10\\n", content_type="text/plain")
)
wait_for_embedded_worker()
dispatch.dispatch_tick()
wait_for_embedded_worker()
job.refresh_from_db()
printing.print_job_record(job=job, actor=grace, outcome="started")
printing.print_job_record(job=job, actor=grace, outcome="finished")
printing.printer_confirm_cleared(machine=printer, actor=grace)
wait_for_embedded_worker()
start = (timezone.now() + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
machines.booking_create(machine=printer, member=ada, start=start, end=start + timedelta(hours=1), note="Gauge")

print("RESULT " + json.dumps({
    "key": signing_key_current().public_key,
    "ada": hub_services.token_create(user=ada, name="test")[1],
    "mallory": hub_services.token_create(user=mallory, name="test")[1],
    "designs": sorted(d.slug for d in ada.designs.all()),
    "records": ada.credentials.count(),
    "lfs_oid": __import__("hashlib").sha256(big).hexdigest(),
}))
"""

MAKE_PEOPLE_B = """
import json
from hub import services
from hub.models import User
tokens = {}
for name in ("ada-b", "mallory"):
    user = User.objects.create_user(name, f"{name}@b.example", "not used")
    tokens[name] = services.token_create(user=user, name="test")[1]
print("RESULT " + json.dumps(tokens))
"""

# Run on hub B: what an account has, as JSON.
ACCOUNT_ON_B = """
import json
from designs.models import Design
from hub.models import ImportedRecord
account = "{username}"
print("RESULT " + json.dumps({{
    "designs": {{
        d.slug: {{
            "title": d.title, "summary": d.summary, "licence": d.licence, "visibility": d.visibility,
            "default_branch": d.default_branch, "imported_from": d.imported_from,
            "forked_from_url": d.forked_from_url, "forked_from_name": d.forked_from_name,
            "fork_point": d.fork_point, "tags": sorted(t.name for t in d.tags.all()),
            "okh_function": d.okh_function,
            "lfs": sorted(d.lfs_links.values_list("lfs_object__oid", flat=True)),
        }}
        for d in Design.objects.filter(owner__username=account)
    }},
    "records": [
        {{"kind": r.kind, "verification": r.verification, "source_hub": r.source_hub,
          "claimed": r.claimed_at is not None}}
        for r in ImportedRecord.objects.filter(account__username=account).order_by("kind", "pk")
    ],
}}))
"""


def result(output: str) -> dict:
    return json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])


class Client:
    """One person's API token on one hub."""

    def __init__(self, hub: LiveHub, token: str | None) -> None:
        self.hub = hub
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.hub.url + path, timeout=60, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(self.hub.url + path, timeout=120, **kwargs)

    def until(self, path: str, *, done: tuple[str, ...]) -> dict:
        """GET `path` until its status is one of `done`; fails after WAIT_S seconds."""
        deadline = time.monotonic() + WAIT_S
        while True:
            response = self.get(path)
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] in done:
                return body
            assert time.monotonic() < deadline, f"still {body['status']} after {WAIT_S} s: {body}"
            time.sleep(0.2)

    def export(self) -> bytes:
        asked = self.post("/api/me/archives/")
        assert asked.status_code == 201, asked.text
        archive = self.until(f"/api/me/archives/{asked.json()['id']}/", done=("ready", "failed"))
        assert archive["status"] == "ready", archive
        download = self.session.get(archive["download_url"], timeout=120)
        assert download.status_code == 200, download.text[:500]
        assert hashlib.sha256(download.content).hexdigest() == archive["sha256"]
        return download.content

    def import_(self, archive: bytes) -> dict:
        sent = self.post("/api/me/imports/", files={"file": ("archive.zip", archive, "application/zip")})
        assert sent.status_code == 201, sent.text
        return self.until(f"/api/me/imports/{sent.json()['id']}/", done=("done", "failed"))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def repo_state(repo: Path) -> tuple[list[str], str]:
    """(every object reachable from any ref, sorted; every ref with its object)."""
    objects = sorted(git(repo, "rev-list", "--objects", "--all").splitlines())
    return objects, git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def lfs_bytes(home: Path, oid: str) -> bytes:
    return (home / "lfs" / oid[0:2] / oid[2:4] / oid).read_bytes()


def edit_json(data: bytes, edit) -> bytes:
    document = json.loads(data)
    edit(document)
    return json.dumps(document).encode()


def rewrite(archive: bytes, *, member: str, change) -> bytes:
    """The archive with one member's bytes changed by `change`, the rest as they were."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            new.writestr(info, change(data) if info.filename == member else data)
    return out.getvalue()


@pytest.fixture(scope="module")
def hubs(tmp_path_factory):
    hub_a = LiveHub(
        "hub-a", tmp_path_factory.mktemp("archives-hub-a"), {"FABHUB_LFS_THRESHOLD_BYTES": "4096"}
    )
    hub_b = None
    try:
        on_a = result(hub_a.shell(SET_UP_A))
        hub_a.start()
        hub_b = LiveHub(
            "hub-b",
            tmp_path_factory.mktemp("archives-hub-b"),
            {
                "FABHUB_TRUSTED_ISSUERS": f"{hub_a.url}/={on_a['key']}",
                # The two hubs talk over loopback; by default the hub refuses to fetch from it.
                "FABHUB_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            },
        )
        on_b = result(hub_b.shell(MAKE_PEOPLE_B))
        hub_b.start()
        yield {
            "a": hub_a,
            "b": hub_b,
            "on_a": on_a,
            "ada": Client(hub_a, on_a["ada"]),
            "mallory_a": Client(hub_a, on_a["mallory"]),
            "ada_b": Client(hub_b, on_b["ada-b"]),
            "mallory_b": Client(hub_b, on_b["mallory"]),
        }
    finally:
        hub_a.stop()
        if hub_b is not None:
            hub_b.stop()


@pytest.fixture(scope="module")
def exported(hubs) -> bytes:
    return hubs["ada"].export()


@pytest.fixture(scope="module")
def first_import(hubs, exported) -> dict:
    job = hubs["ada_b"].import_(exported)
    assert job["status"] == "done", job
    return job


def account_on_b(hubs, username: str) -> dict:
    return result(hubs["b"].shell(ACCOUNT_ON_B.format(username=username)))


def test_the_import_reports_what_it_brought_and_that_hub_a_signed_it(hubs, first_import):
    assert first_import["signature"] == "verified"
    assert first_import["source_hub"] == hubs["a"].url + "/"
    assert first_import["source_account"] == hubs["a"].url + "/ada/"
    counts = first_import["report"]["counts"]
    assert counts["designs"] == len(hubs["on_a"]["designs"]) == 3
    assert counts["records"] == hubs["on_a"]["records"] == 3  # a make, a qualification, a print
    assert (counts["proposals"], counts["comments"], counts["bookings"]) == (1, 1, 1)


def test_every_design_has_the_same_git_objects_and_refs_on_both_hubs(hubs, first_import):
    for slug in hubs["on_a"]["designs"]:
        on_a = repo_state(hubs["a"].home / "repos" / "ada" / f"{slug}.git")
        on_b = repo_state(hubs["b"].home / "repos" / "ada-b" / f"{slug}.git")
        assert on_b == on_a, slug
        assert on_a[0], slug
    car = hubs["b"].home / "repos" / "ada-b" / "car.git"
    assert git(car, "tag", "-l", "--format=%(contents:subject)", "v0.1").strip() == "First *release*"


def test_lfs_objects_arrive_byte_for_byte_and_linked_to_their_design(hubs, first_import):
    oid = hubs["on_a"]["lfs_oid"]
    assert lfs_bytes(hubs["b"].home, oid) == lfs_bytes(hubs["a"].home, oid)
    assert hashlib.sha256(lfs_bytes(hubs["b"].home, oid)).hexdigest() == oid
    assert account_on_b(hubs, "ada-b")["designs"]["car"]["lfs"] == [oid]


def test_settings_attribution_and_lineage_come_with_each_design(hubs, first_import):
    a = hubs["a"].url
    designs = account_on_b(hubs, "ada-b")["designs"]
    assert sorted(designs) == hubs["on_a"]["designs"]
    car = designs["car"]
    assert (car["title"], car["summary"], car["licence"], car["visibility"]) == (
        "Car",
        "Four wheels",
        "CERN-OHL-S-2.0",
        "public",
    )
    assert (car["tags"], car["okh_function"], car["default_branch"]) == (["kit", "vehicle"], "Drives", "main")
    assert designs["secret"]["visibility"] == "private"
    for slug, design in designs.items():
        assert design["imported_from"] == f"{a}/ada/{slug}/"
    gauge = designs["gauge"]
    assert gauge["forked_from_url"] == f"{a}/cy/gauge/"
    assert gauge["forked_from_name"] == f"cy/gauge (on {a.removeprefix('http://')})"
    gauge_a = hubs["a"].home / "repos" / "cy" / "gauge.git"
    assert gauge["fork_point"] == git(gauge_a, "rev-parse", "refs/heads/main").strip()
    assert designs["car"]["forked_from_url"] == ""


def test_records_verify_on_hub_b_against_hub_a_s_trusted_key(hubs, first_import):
    records = account_on_b(hubs, "ada-b")["records"]
    credentials = [r for r in records if r["kind"] == "credential"]
    assert len(credentials) == 3
    assert {r["verification"] for r in credentials} == {"verified"}
    assert {r["source_hub"] for r in records} == {hubs["a"].url + "/"}
    kinds = sorted(r["kind"] for r in records if r["kind"] != "credential")
    assert kinds == ["booking", "comment", "print", "proposal"]


def test_the_private_design_stays_private_on_hub_b(hubs, first_import):
    assert requests.get(f"{hubs['b'].url}/api/designs/ada-b/secret/", timeout=30).status_code == 404
    assert hubs["ada_b"].get("/api/designs/ada-b/secret/").status_code == 200


def test_ada_claims_her_records_with_a_challenge_hub_a_signs(hubs, first_import):
    ada_b, import_id = hubs["ada_b"], first_import["id"]
    asked = ada_b.post(f"/api/me/imports/{import_id}/challenge/")
    assert asked.status_code == 201, asked.text
    challenge = asked.json()["challenge"]
    assert asked.json()["authorise_url"].startswith(hubs["a"].url + "/credentials/authorise/?")
    audience = f"{hubs['b'].url}/ada-b/"
    signed = hubs["ada"].post(
        "/api/credentials/authorise/", json={"challenge": challenge, "audience": audience}
    )
    assert signed.status_code == 201, signed.text
    claimed = ada_b.post(f"/api/me/imports/{import_id}/claim/", json={"proof": signed.json()})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimed"] == 3
    assert all(r["claimed"] for r in account_on_b(hubs, "ada-b")["records"] if r["kind"] == "credential")
    # A proof is good once: the challenge it answers is spent.
    again = ada_b.post(f"/api/me/imports/{import_id}/claim/", json={"proof": signed.json()})
    assert again.status_code == 400, again.text


def test_another_account_imports_the_designs_but_cannot_claim_ada_s_records(hubs, exported, first_import):
    mallory_b = hubs["mallory_b"]
    job = mallory_b.import_(exported)
    assert job["status"] == "done", job
    assert job["report"]["counts"]["designs"] == 3
    import_id = job["id"]
    challenge = mallory_b.post(f"/api/me/imports/{import_id}/challenge/").json()["challenge"]
    # Ada signs mallory's challenge, but for her own account on B (ada-b): mallory cannot use it.
    for_ada_b = hubs["ada"].post(
        "/api/credentials/authorise/", json={"challenge": challenge, "audience": f"{hubs['b'].url}/ada-b/"}
    )
    assert for_ada_b.status_code == 201, for_ada_b.text
    refused = mallory_b.post(f"/api/me/imports/{import_id}/claim/", json={"proof": for_ada_b.json()})
    assert refused.status_code == 400
    assert "authorises another account" in refused.text
    # Without ada's token, hub A signs nothing for her...
    anonymous = Client(hubs["a"], None).post(
        "/api/credentials/authorise/", json={"challenge": challenge, "audience": f"{hubs['b'].url}/mallory/"}
    )
    assert anonymous.status_code in (401, 403)
    # ...and what mallory's own account on A signs is a proof about mallory, not ada.
    own = hubs["mallory_a"].post(
        "/api/credentials/authorise/", json={"challenge": challenge, "audience": f"{hubs['b'].url}/mallory/"}
    )
    assert own.status_code == 201, own.text
    refused = mallory_b.post(f"/api/me/imports/{import_id}/claim/", json={"proof": own.json()})
    assert refused.status_code == 400
    assert "another account than the archive" in refused.text
    records = account_on_b(hubs, "mallory")["records"]
    assert not any(r["claimed"] for r in records)


@pytest.mark.parametrize(
    ("member", "change"),
    [
        ("designs/{car}/repo.bundle", lambda data: data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]),
        (
            "records/credentials.json",
            lambda data: edit_json(data, lambda d: d[0].update(validFrom="2020-01-01T00:00:00Z")),
        ),
        ("manifest.json", None),
    ],
    ids=["bundle-byte", "record-field", "manifest-field"],
)
def test_a_tampered_archive_is_refused_naming_the_file(hubs, exported, first_import, member, change):
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        car = next(
            path.split("/")[1]
            for path in (entry["path"] for entry in manifest["files"])
            if path.endswith("/design.json") and json.loads(archive.read(path))["slug"] == "car"
        )
    member = member.format(car=car)
    if change is None:
        change = lambda data: edit_json(data, lambda d: d["account"].update(name="Mallory"))  # noqa: E731
    tampered = rewrite(exported, member=member, change=change)
    assert tampered != exported
    before = account_on_b(hubs, "ada-b")
    job = hubs["ada_b"].import_(tampered)
    assert job["status"] == "failed", job
    assert member in job["error"], job["error"]
    assert account_on_b(hubs, "ada-b") == before


def test_importing_the_same_archive_again_changes_nothing(hubs, exported, first_import):
    home_b = hubs["b"].home / "repos" / "ada-b"
    before = account_on_b(hubs, "ada-b")
    repos = {slug: repo_state(home_b / f"{slug}.git") for slug in hubs["on_a"]["designs"]}
    job = hubs["ada_b"].import_(exported)
    assert job["status"] == "done", job
    counts = job["report"]["counts"]
    assert counts.get("designs", 0) == 0 and counts["designs_already_imported"] == 3
    assert counts.get("records", 0) == 0
    assert account_on_b(hubs, "ada-b") == before
    assert {slug: repo_state(home_b / f"{slug}.git") for slug in hubs["on_a"]["designs"]} == repos
    assert sorted(p.name for p in home_b.iterdir()) == sorted(f"{s}.git" for s in hubs["on_a"]["designs"])
