"""Demo data at a realistic size for the scale harness (bench/scale.py), and its checks.

    python bench/scale_data.py load  --size full|short --out plan.json
    python bench/scale_data.py check --plan plan.json --acks acks.jsonl

Runs with the harness's environment (DATABASE_URL, FABHUB_DATA_DIR, DEBUG=0 …).

`load` writes what a person can see through the hub's own services, and only bulk rows
where the services would take too long and nothing behind them differs:
- services: users' tokens (`token_create`), designs (`design_create`) and every commit
  (`design_commit`, real git; a `.gitattributes` and a `.bin` file put one file in Git
  LFS), labs (`lab_create` by a site administrator, so approved at once);
- bulk INSERTs: users (one password hash shared), memberships, machines and printers,
  bookings in the past (non-overlapping by construction, so the exclusion constraint
  holds), print jobs already done with their G-code rows, notifications.

`check` reads the locust users' log of acknowledged writes and says what is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SIZES = {
    # designs, long histories (commits each), labs, machines per lab, bookings, jobs, users
    "full": {"designs": 300, "long": 12, "long_commits": 30, "lfs": 10, "labs": 24, "bookings": 4000,
             "jobs": 3000, "users": 40, "notifications": 20},
    "short": {"designs": 40, "long": 3, "long_commits": 10, "lfs": 3, "labs": 6, "bookings": 600,
              "jobs": 500, "users": 16, "notifications": 5},
}  # fmt: skip
PRINTERS_PER_LAB = 3
CUTTERS_PER_LAB = 3


def boot() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    import django

    django.setup()


def cube_stl(size: float) -> bytes:
    """An ASCII STL cube of `size` mm: a real mesh the workers analyse."""
    s = size
    v = [(0, 0, 0), (s, 0, 0), (s, s, 0), (0, s, 0), (0, 0, s), (s, 0, s), (s, s, s), (0, s, s)]
    faces = [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4),
             (1, 2, 6), (1, 6, 5), (2, 3, 7), (2, 7, 6), (3, 0, 4), (3, 4, 7)]  # fmt: skip
    lines = ["solid cube"]
    for a, b, c in faces:
        lines += ["facet normal 0 0 0", "outer loop"]
        lines += [f"vertex {v[i][0]} {v[i][1]} {v[i][2]}" for i in (a, b, c)]
        lines += ["endloop", "endfacet"]
    lines.append("endsolid cube")
    return ("\n".join(lines) + "\n").encode()


def load(size: str, out: Path) -> None:
    boot()
    from django.contrib.auth.hashers import make_password
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from designs import services as design_services
    from designs.services.commits import Upload
    from hub import services as hub_services
    from hub.models import Notification, NotificationKind, User
    from machines import services as machine_services
    from machines.models import Booking, LabMembership, Machine, Printer, PrintGcode, PrintJob
    from machines.printing.files import store_file

    n = SIZES[size]
    rng = random.Random(19)
    started = time.monotonic()
    timings: dict[str, float] = {}

    def upload(path: str, data: bytes) -> Upload:
        return Upload(path=path, content=ContentFile(data, name=path.rsplit("/", 1)[-1]))

    admin = User.objects.create_user("scale-admin", password="scale-admin", is_staff=True)
    password = make_password("scale")
    User.objects.bulk_create([User(username=f"maker{i}", password=password) for i in range(n["users"])])
    users = list(User.objects.filter(username__startswith="maker").order_by("pk"))
    timings["users"] = time.monotonic() - started

    # Designs and their commits, through the services (real git, LFS store, analyses queued).
    t = time.monotonic()
    words = [
        "chassis",
        "gearbox",
        "hinge",
        "bracket",
        "enclosure",
        "clamp",
        "spindle",
        "mount",
        "frame",
        "wheel",
    ]
    designs = []
    for i in range(n["designs"]):
        owner = users[i % len(users)]
        slug = f"{words[i % len(words)]}-{i}"
        design = design_services.design_create(
            owner=owner,
            slug=slug,
            title=f"{words[i % len(words)].title()} {i}",
            licence="CERN-OHL-S-2.0",
            summary=f"A {words[i % len(words)]} for the scale harness, number {i}.",
        )
        files = [
            upload("README.md", f"# {design.title}\n\nBuild notes for {slug}.\n".encode()),
            upload("parts/body.stl", cube_stl(10 + i % 30)),
            upload("notes.txt", ("line\n" * (1 + i % 50)).encode()),
        ]
        lfs = i < n["lfs"]
        if lfs:
            files.insert(0, upload(".gitattributes", b"*.bin filter=lfs diff=lfs merge=lfs -text\n"))
            files.append(upload("firmware/blob.bin", bytes(rng.getrandbits(8) for _ in range(64 * 1024))))
        first = design_services.design_commit(
            design=design, author=owner, message="First version", uploads=files
        )
        commits = [first]
        if n["designs"] - n["long"] <= i:
            for k in range(n["long_commits"]):
                commits.append(
                    design_services.design_commit(
                        design=design, author=owner, message=f"Revision {k}",
                        uploads=[upload("notes.txt", (f"revision {k}\n" * (k + 1)).encode()),
                                 upload("parts/body.stl", cube_stl(10 + k % 30))],
                    )
                )  # fmt: skip
        designs.append({"name": design.full_name, "owner": owner.username, "first": first,
                        "head": commits[-1], "commits": len(commits), "lfs": lfs})  # fmt: skip
    timings["designs"] = time.monotonic() - t

    # Labs through the service; their machines, members and history in bulk.
    t = time.monotonic()
    labs = [
        machine_services.lab_create(creator=admin, name=f"Scale Lab {k}", slug=f"scale-lab-{k}")
        for k in range(n["labs"])
    ]
    for lab in labs:  # open around the clock, so any slot the load test books is open
        machine_services.lab_set_hours(
            lab=lab, actor=admin, hours=[(d, dtime(0), dtime(0)) for d in range(7)]
        )
    LabMembership.objects.bulk_create([LabMembership(lab=lab, user=u) for lab in labs for u in users])
    machines = Machine.objects.bulk_create(
        [
            Machine(lab=lab, name=f"{kind} {j}", slug=f"{kind}-{j}", kind=mk, work_x_mm=250, work_y_mm=210,
                    work_z_mm=210)
            for lab in labs
            for kind, mk, count in (("printer", Machine.Kind.FDM_PRINTER, PRINTERS_PER_LAB),
                                    ("cutter", Machine.Kind.LASER_CUTTER, CUTTERS_PER_LAB))
            for j in range(count)
        ]
    )  # fmt: skip
    printers = [m for m in machines if m.kind == Machine.Kind.FDM_PRINTER]
    cutters = [m for m in machines if m.kind != Machine.Kind.FDM_PRINTER]
    Printer.objects.bulk_create([Printer(machine=m, material="PLA", state="idle") for m in printers])
    now = timezone.now().replace(microsecond=0)
    # Past bookings, back to back on each cutter: one hour each, one hour apart.
    per = -(-n["bookings"] // len(cutters))
    Booking.objects.bulk_create(
        [
            Booking(machine=m, member=users[(b + j) % len(users)], created_by=users[(b + j) % len(users)],
                    start=now - timedelta(hours=2 * (b + 1)), end=now - timedelta(hours=2 * b + 1),
                    note="earlier work")
            for j, m in enumerate(cutters)
            for b in range(per)
        ][: n["bookings"]],
        batch_size=2000,
    )  # fmt: skip
    sha, gsize = store_file(io.BytesIO(b"; scale harness\nG28\nG1 X10 Y10 F6000\n"))
    jobs = PrintJob.objects.bulk_create(
        [
            PrintJob(lab=printers[j % len(printers)].lab, owner=users[j % len(users)],
                     file_kind=PrintJob.FileKind.GCODE, path=f"part-{j}.gcode", source_sha=sha,
                     status=PrintJob.Status.DONE, machine=printers[j % len(printers)],
                     submitted_at=now - timedelta(hours=j), queued_at=now - timedelta(hours=j),
                     finished_at=now - timedelta(hours=j) + timedelta(minutes=30), estimated_seconds=1800)
            for j in range(n["jobs"])
        ],
        batch_size=2000,
    )  # fmt: skip
    PrintGcode.objects.bulk_create(
        [PrintGcode(job=j, sha256=sha, size=gsize, estimated_seconds=1800) for j in jobs], batch_size=2000
    )
    Notification.objects.bulk_create(
        [
            Notification(
                recipient=u,
                kind=NotificationKind.LAB,
                subject=f"Booking reminder {k}",
                body="Scale harness.",
                link=f"/labs/{labs[k % len(labs)].slug}/",
                target_type="machines.lab",
                target_id=labs[k % len(labs)].pk,
            )
            for u in users
            for k in range(n["notifications"])
        ],
        batch_size=2000,
    )
    timings["labs"] = time.monotonic() - t

    # One token per person the load test plays; labs for bookings: one cutter each.
    tokens = {u.username: hub_services.token_create(user=u, name="scale")[1] for u in users}
    plan = {
        "size": size,
        "users": [{"username": u.username, "token": tokens[u.username]} for u in users],
        "designs": designs,
        "labs": [lab.slug for lab in labs],
        "cutters": [{"id": m.pk, "lab": m.lab.slug} for m in cutters],
        "counts": {
            "designs": len(designs),
            "commits": sum(d["commits"] for d in designs),
            "labs": len(labs),
            "machines": len(machines),
            "bookings": Booking.objects.count(),
            "jobs": PrintJob.objects.count(),
            "users": len(users),
        },  # fmt: skip
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    out.write_text(json.dumps(plan, indent=1))
    print(json.dumps({"counts": plan["counts"], "seconds": plan["seconds"]}))


def check(plan_path: Path, acks_path: Path) -> int:
    """Every acknowledged write is there; no job was handed to a printer twice."""
    boot()
    from designs.models import Design
    from machines.models import Booking, PrintJob

    plan = json.loads(plan_path.read_text())
    acks = [json.loads(line) for line in acks_path.read_text().splitlines() if line.strip()]
    problems: list[str] = []
    counts: dict[str, int] = {}
    # The loaded data survived the crashes too.
    if Design.objects.count() < plan["counts"]["designs"]:
        problems.append(f"{plan['counts']['designs'] - Design.objects.count()} loaded designs missing")
    commits = [a for a in acks if a["kind"] == "commit"]
    for ack in commits:
        owner, slug = ack["design"].split("/")
        design = Design.objects.filter(owner__username=owner, slug=slug).first()
        if design is None:
            problems.append(f"design {ack['design']} missing")
            continue
        repo = Path(design.repo_path)
        found = subprocess.run(
            ["git", "--git-dir", str(repo), "cat-file", "-e", f"{ack['sha']}^{{commit}}"], capture_output=True
        )
        reachable = subprocess.run(
            ["git", "--git-dir", str(repo), "branch", "--contains", ack["sha"]],
            capture_output=True,
            text=True,
        )
        if found.returncode != 0:
            problems.append(f"commit {ack['sha']} of {ack['design']} ({ack['via']}) missing")
        elif not reachable.stdout.strip():
            problems.append(f"commit {ack['sha']} of {ack['design']} ({ack['via']}) on no branch")
    counts["commits"] = len(commits)
    booking_ids = [a["id"] for a in acks if a["kind"] == "booking"]
    present = set(Booking.objects.filter(pk__in=booking_ids).values_list("pk", flat=True))
    problems += [f"booking {pk} missing" for pk in booking_ids if pk not in present]
    counts["bookings"] = len(booking_ids)
    job_ids = [a["id"] for a in acks if a["kind"] == "job"]
    present = set(PrintJob.objects.filter(pk__in=job_ids).values_list("pk", flat=True))
    problems += [f"print job {pk} missing" for pk in job_ids if pk not in present]
    counts["jobs"] = len(job_ids)
    # A job handed to a printer twice would hold two live print-job bookings.
    handoffs: dict[int, int] = {}
    for note in (
        Booking.objects.filter(kind=Booking.Kind.PRINT_JOB)
        .exclude(status=Booking.Status.CANCELLED)
        .values_list("note", flat=True)
    ):
        job_id = int(note.split("#", 1)[1].split(":", 1)[0])
        handoffs[job_id] = handoffs.get(job_id, 0) + 1
    problems += [f"print job {pk} handed to a printer {c} times" for pk, c in handoffs.items() if c > 1]
    stuck = PrintJob.objects.filter(status=PrintJob.Status.PREPARING, pk__in=job_ids).count()
    states: dict[str, int] = {}
    for status in PrintJob.objects.filter(pk__in=job_ids).values_list("status", flat=True):
        states[status] = states.get(status, 0) + 1
    print(json.dumps({"acknowledged": counts, "handoffs": len(handoffs), "job_states": states,
                      "still_preparing": stuck, "problems": problems[:50], "problem_count": len(problems)}))  # fmt: skip
    return 1 if problems else 0


def preparing_left() -> None:
    """The work still in flight: jobs being prepared, analyses running; and analyses
    pending (queued, or left pending by a task that failed: the hub's sweep re-queues
    those only once they are older than its stale window, minutes away)."""
    boot()
    from designs.models import MeshAnalysis
    from machines.models import PrintJob

    analyses = MeshAnalysis.objects
    print(json.dumps({"preparing": PrintJob.objects.filter(status=PrintJob.Status.PREPARING).count(),
                      "analyses_running": analyses.filter(status=MeshAnalysis.Status.RUNNING).count(),
                      "analyses_pending": analyses.filter(status=MeshAnalysis.Status.PENDING).count()}))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load")
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("check")
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--acks", type=Path, required=True)
    sub.add_parser("pending")
    args = parser.parse_args()
    if args.command == "load":
        load(args.size, args.out)
        return 0
    if args.command == "pending":
        preparing_left()
        return 0
    return check(args.plan, args.acks)


if __name__ == "__main__":
    raise SystemExit(main())
