"""The scale harness's load (bench/scale.py): people browsing, committing, booking and printing.

Each simulated person is one of the loader's makers (bench/scale_data.py) with a personal
token, and writes only to their own designs and their own cutter, so that every refusal
is the hub's and not a race the test made. Environment:
    SCALE_PLAN      the loader's plan (users, tokens, designs, labs, cutters)
    SCALE_ACKS      where to append each write the hub acknowledged (JSON lines)
    SCALE_REQUESTS  where to append every request: time, kind, milliseconds, status
    SCALE_WORK      a folder for the people's git clones
Every request is named by its kind (not its URL) so the report reads per kind.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task

PLAN = json.loads(Path(os.environ["SCALE_PLAN"]).read_text())
ACKS = Path(os.environ["SCALE_ACKS"])
REQUESTS = Path(os.environ["SCALE_REQUESTS"])
WORK = Path(os.environ["SCALE_WORK"])
_people = itertools.count()
_write_lock = threading.Lock()
_requests_file = REQUESTS.open("a", buffering=1)
_acks_file = ACKS.open("a", buffering=1)
GCODE = b"; scale harness job\nG28\nG1 X20 Y20 F6000\nG1 X40 Y20 E1\n"


@events.request.add_listener
def log_request(request_type, name, response_time, response_length, response=None, exception=None, **_):
    status = getattr(response, "status_code", None) or 0
    # A refusal's message says whether the hub or the test is wrong: keep its start.
    detail = response.text[:300] if 400 <= status < 500 else None
    with _write_lock:
        _requests_file.write(
            json.dumps({"t": time.time(), "kind": name, "ms": response_time, "status": status,
                        "error": None if exception is None else str(exception)[:200], "detail": detail}) + "\n"
        )  # fmt: skip


def acknowledge(kind: str, **fields) -> None:
    with _write_lock:
        _acks_file.write(json.dumps({"kind": kind, "t": time.time(), **fields}) + "\n")


class Maker(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        number = next(_people)
        person = PLAN["users"][number % len(PLAN["users"])]
        self.username = person["username"]
        self.token = person["token"]
        self.client.headers["Authorization"] = f"Bearer {self.token}"
        self.own = [d for d in PLAN["designs"] if d["owner"] == self.username] or PLAN["designs"][:1]
        self.cutter = PLAN["cutters"][number % len(PLAN["cutters"])]
        self.lab = PLAN["labs"][number % len(PLAN["labs"])]
        self.rng = random.Random(number)
        # Bookings one after another on this person's cutter, from tomorrow on: a 409
        # would be the hub's mistake, not a collision the test arranged.
        start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        self.slots = (start + timedelta(minutes=30 * k) for k in itertools.count())
        self.clone: Path | None = None
        self.number = number

    # -- reading ------------------------------------------------------------------------

    def any_design(self) -> dict:
        return self.rng.choice(PLAN["designs"])

    @task(6)
    def browse_designs(self) -> None:
        pages = -(-len(PLAN["designs"]) // 30)  # the API's page size
        self.client.get(f"/api/designs/?page={self.rng.randint(1, pages)}", name="list designs")
        design = self.any_design()
        self.client.get(f"/api/designs/{design['name']}/", name="design detail")
        self.client.get(f"/api/designs/{design['name']}/tree/", name="file tree")

    @task(4)
    def browse_pages(self) -> None:
        design = self.any_design()
        self.client.get(f"/{design['name']}/", name="design page")
        self.client.get(f"/{design['name']}/blob/README.md", name="file page")

    @task(4)
    def read_files(self) -> None:
        design = self.any_design()
        self.client.get(f"/api/designs/{design['name']}/raw/?path=parts/body.stl", name="raw file")
        self.client.get(f"/api/designs/{design['name']}/commits/", name="history")

    @task(3)
    def search(self) -> None:
        word = self.rng.choice(["gear", "hinge", "clamp", "frame", "mount", "wheel", "nothing-like-this"])
        self.client.get(f"/api/designs/?q={word}", name="search")

    @task(2)
    def compare(self) -> None:
        design = self.rng.choice([d for d in PLAN["designs"] if d["commits"] > 1] or PLAN["designs"])
        self.client.get(
            f"/api/designs/{design['name']}/diff/?base={design['first']}&head={design['head']}",
            name="compare",
        )

    @task(3)
    def read_queue_and_notifications(self) -> None:
        self.client.get("/api/print-jobs/", name="my print jobs")
        self.client.get(f"/api/labs/{self.lab}/print-jobs/", name="lab queue")
        self.client.get("/api/notifications/", name="notifications")
        self.client.get("/api/bookings/", name="my bookings")

    # -- writing ------------------------------------------------------------------------

    @task(2)
    def upload_file(self) -> None:
        design = self.rng.choice(self.own)
        content = f"measured {time.time()} by {self.username}\n".encode()
        with self.client.post(
            f"/api/designs/{design['name']}/upload/",
            data={"message": "Notes from the bench"},
            files={"files": ("bench.txt", content, "text/plain")},
            name="upload",
            catch_response=True,
        ) as response:
            if response.status_code == 201:
                acknowledge("commit", via="upload", design=design["name"], sha=response.json()["sha"])

    @task(2)
    def book_machine(self) -> None:
        start = next(self.slots)
        with self.client.post(
            "/api/bookings/",
            json={
                "machine": self.cutter["id"],
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=30)).isoformat(),
                "note": "scale harness",
            },  # fmt: skip
            name="book",
            catch_response=True,
        ) as response:
            if response.status_code == 201:
                acknowledge("booking", id=response.json()["id"])

    @task(2)
    def submit_print_job(self) -> None:
        with self.client.post(
            "/api/print-jobs/",
            data={"lab": self.lab, "material": "PLA"},
            files={"file": (f"part-{self.number}.gcode", GCODE, "text/x-gcode")},
            name="submit print job",
            catch_response=True,
        ) as response:
            if response.status_code == 201:
                acknowledge("job", id=response.json()["id"])
            elif response.status_code == 409 or response.status_code == 400:
                # A lab's per-member limits refuse further jobs: a correct answer.
                response.success()

    @task(1)
    def git_clone_and_push(self) -> None:
        design = self.rng.choice(self.own)
        host = urlsplit(self.host)
        url = f"{host.scheme}://{self.username}:{self.token}@{host.netloc}/{design['name']}.git"
        target = WORK / f"{self.username}-{self.number}"
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1"}
        if target.exists():
            subprocess.run(["rm", "-rf", str(target)], check=False)
        if not self.git("git clone", ["git", "clone", "--quiet", url, str(target)], env=env):
            return
        note = target / "pushed.txt"
        note.write_text(f"pushed {time.time()} by {self.username}\n")
        git = ["git", "-C", str(target), "-c", "user.name=Bench", "-c", "user.email=bench@example.org"]
        subprocess.run([*git, "add", "pushed.txt"], check=True, env=env)
        subprocess.run([*git, "commit", "--quiet", "-m", "Pushed by the bench"], check=True, env=env)
        sha = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, env=env
        ).stdout.strip()
        if self.git("git push", [*git, "push", "--quiet", "origin", "HEAD:main"], env=env):
            acknowledge("commit", via="push", design=design["name"], sha=sha)

    def git(self, kind: str, argv: list[str], *, env: dict) -> bool:
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        failure = None
        if done.returncode != 0:
            failure = RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
        events.request.fire(
            request_type="GIT",
            name=kind,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            response=None,
            exception=failure,
            context={},
        )
        return failure is None
