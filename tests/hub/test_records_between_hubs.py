"""Records signed on one live hub verify on another (issue 13 §5).

Two independent hubs, each its own gunicorn, SQLite database and data directory, on
plain HTTP loopback. Hub B trusts hub A through its operator's trust list
(FABHUB_TRUSTED_ISSUERS) and reads A's revocation list over HTTP when asked to check
online; nothing of A's key comes from the records themselves.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub import signing
from tests.git.conftest import ROOT, port_to_keep, start_gunicorn

pytestmark = pytest.mark.slow

# Run on hub A: a lab grants ada two qualifications and withdraws one; prints the signed
# records and the hub's published key.
ISSUE_ON_A = """
import json
from datetime import date
from hub import services as hub_services
from hub.models import User
from hub.signing import signing_key_current
from machines import services
from machines.models import Lab, Machine
from machines.records import qualification_source
from hub.models import Credential

manager = User.objects.create_user("grace", "grace@lab-a.example", "not used")
ada = User.objects.create_user("ada", "ada@lab-a.example", "not used")
lab = services.lab_create(creator=manager, name="Lab A", slug="lab-a", timezone="Europe/Paris")
Lab.objects.filter(pk=lab.pk).update(approved_at=lab.created_at)
lab.refresh_from_db()
services.membership_join(lab=lab, user=ada)
kept = services.qualification_record(
    lab=lab, actor=manager, member=ada, trained_on=date(2026, 1, 5), kind=Machine.Kind.FDM_PRINTER
)
withdrawn = services.qualification_record(
    lab=lab, actor=manager, member=ada, trained_on=date(2026, 1, 5), kind=Machine.Kind.LASER_CUTTER
)
withdrawn_source = qualification_source(withdrawn)
services.qualification_revoke(qualification=withdrawn, actor=manager)
print("RESULT " + json.dumps({
    "kept": Credential.objects.get(source=qualification_source(kept)).document,
    "withdrawn": Credential.objects.get(source=withdrawn_source).document,
    "key": signing_key_current().public_key,
    "token": hub_services.token_create(user=ada, name="test")[1],
}))
"""

MAKE_PERSON = """
from hub import services
from hub.models import User
user = User.objects.create_user("bea", "bea@lab-b.example", "not used")
print("TOKEN " + services.token_create(user=user, name="test")[1])
"""


class LiveHub:
    def __init__(self, name: str, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = port_to_keep()  # named in its settings before it starts
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FABHUB_", "DATABASE_", "CELERY_"))},
            "DJANGO_SETTINGS_MODULE": "hub.settings",
            "DEBUG": "0",
            "SECRET_KEY": f"{name}-only-for-tests",
            "FABHUB_DATA_DIR": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'hub.sqlite3'}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "FABHUB_PUBLIC_URL": self.url,
            "FABHUB_PRINT_TICK_S": "0",
            **(extra_env or {}),
        }
        self.manage("migrate", "--noinput")
        self.proc: subprocess.Popen | None = None

    def manage(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            check=check,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def shell(self, script: str) -> str:
        return self.manage("shell", "-c", script).stdout

    def start(self) -> None:
        self.proc, url = start_gunicorn(self.env, self.home / "gunicorn.log", port=self.port)
        assert url == self.url

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def verify(self, record, *, token: str | None, online: bool) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}/api/credentials/verify/",
            method="POST",
            data=json.dumps({"record": record, "online": online}).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {token}"} if token else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def hubs(tmp_path_factory):
    hub_a = LiveHub("hub-a", tmp_path_factory.mktemp("records-hub-a"))
    issued = json.loads(
        next(line for line in hub_a.shell(ISSUE_ON_A).splitlines() if line.startswith("RESULT "))[7:]
    )
    hub_a.start()
    hub_b = LiveHub(
        "hub-b",
        tmp_path_factory.mktemp("records-hub-b"),
        {
            "FABHUB_TRUSTED_ISSUERS": f"{hub_a.url}/={issued['key']}",
            # The two hubs talk over loopback; by default the hub refuses to fetch from it.
            "FABHUB_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
        },
    )
    token_b = hub_b.shell(MAKE_PERSON).split()[-1]
    hub_b.start()
    yield hub_a, hub_b, issued, token_b
    hub_a.stop()
    hub_b.stop()


def test_a_qualification_signed_on_one_hub_verifies_on_another_online(hubs):
    hub_a, hub_b, issued, token = hubs
    status, report = hub_b.verify(issued["kept"], token=token, online=True)
    assert status == 200
    assert report["status"] == "verified", report
    assert report["issuer"] == f"{hub_a.url}/"
    assert report["subject"] == f"{hub_a.url}/ada/"
    assert any("status list" in check["detail"] for check in report["checks"])


def test_a_qualification_the_lab_withdrew_is_reported_revoked_on_the_other_hub(hubs):
    _, hub_b, issued, token = hubs
    status, report = hub_b.verify(issued["withdrawn"], token=token, online=True)
    assert (status, report["status"]) == (200, "revoked"), report
    # Offline, the record is still what hub A signed: authentic, not current.
    assert hub_b.verify(issued["withdrawn"], token=None, online=False)[1]["status"] == "verified"


def test_a_record_with_one_field_changed_is_reported_tampered_on_the_other_hub(hubs):
    _, hub_b, issued, token = hubs
    record = copy.deepcopy(issued["kept"])
    record["credentialSubject"]["qualification"]["expiresOn"] = "2099-12-31"
    assert hub_b.verify(record, token=token, online=True)[1]["status"] == "tampered"


def test_a_record_signed_by_a_key_hub_a_does_not_hold_is_an_unknown_key_on_the_other_hub(hubs):
    hub_a, hub_b, issued, token = hubs
    record = copy.deepcopy(issued["kept"])
    forger = Ed25519PrivateKey.generate()
    proof = {
        **record.pop("proof"),
        "verificationMethod": f"{hub_a.url}/#{signing.public_key_name(forger.public_key())}",
    }
    proof.pop("proofValue")
    proof["proofValue"] = "z" + signing.base58btc_encode(forger.sign(signing.signing_input(record, proof)))
    record["proof"] = proof
    assert hub_b.verify(record, token=token, online=True)[1]["status"] == "unknown-key"


def test_a_hub_that_does_not_trust_the_issuer_reports_an_unknown_key(hubs):
    """Trust goes one way: B lists A, A lists nobody. A record B signed (its revocation
    list is one) is authentic, but A has no key it may check it with."""
    hub_a, hub_b, _, _ = hubs
    with urllib.request.urlopen(f"{hub_b.url}/credentials/status/0", timeout=10) as response:
        signed_by_b = json.loads(response.read())
    assert hub_b.verify(signed_by_b, token=None, online=False)[1]["status"] == "verified"
    status, report = hub_a.verify(signed_by_b, token=None, online=False)
    assert (status, report["status"]) == (200, "unknown-key"), report


def test_online_checks_need_a_sign_in(hubs):
    _, hub_b, issued, _ = hubs
    assert hub_b.verify(issued["kept"], token=None, online=True)[0] == 403


def test_the_verify_command_on_the_other_hub_exits_by_the_record_s_status(hubs, tmp_path):
    _, hub_b, issued, _ = hubs
    kept, withdrawn = tmp_path / "kept.json", tmp_path / "withdrawn.json"
    kept.write_text(json.dumps(issued["kept"]))
    withdrawn.write_text(json.dumps(issued["withdrawn"]))
    good = hub_b.manage("verify_record", str(kept), "--online", check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("verified")
    bad = hub_b.manage("verify_record", str(withdrawn), "--online", check=False)
    assert bad.returncode == 1 and bad.stdout.startswith("revoked"), bad.stdout + bad.stderr


def test_hub_a_publishes_its_keys_and_status_list(hubs):
    hub_a, _, issued, _ = hubs
    with urllib.request.urlopen(f"{hub_a.url}/.well-known/did.json", timeout=10) as response:
        did = json.loads(response.read())
    assert [m["publicKeyMultibase"] for m in did["verificationMethod"]] == [issued["key"]]
    with urllib.request.urlopen(
        issued["kept"]["credentialStatus"]["statusListCredential"], timeout=10
    ) as response:
        listing = json.loads(response.read())
    assert listing["credentialSubject"]["statusPurpose"] == "revocation"
