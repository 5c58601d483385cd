"""The scaled set-up, run for real under load and faults (issue 19; run by scripts/scale-harness).

Starts, without Docker and with the production settings (DEBUG=0, DATABASE_URL,
CELERY_BROKER_URL): a throw-away PostgreSQL, Redis (append-only file, as in
docker-compose.yml), two gunicorn instances on one data directory, a round-robin TCP
proxy in front of them (this file), two Celery workers and beat. Loads demo data
(bench/scale_data.py), then runs locust headless for a fixed time (bench/scale_locust.py)
in three phases:

    steady     no fault: must answer no 5xx and drop no connection
    faults     kill -9 one Celery worker, restart Redis, restart PostgreSQL, kill -9 one
               gunicorn (each restarted): errors are allowed while a part is down
    recovery   everything is back: again no 5xx and no dropped connection

Then it waits for the queue to drain (Redis's queue empty, no job still preparing; the
mesh analyses left by failed tasks are counted, see drain()) and checks the locust users' log of acknowledged writes against
the database and git: every commit, booking and print job the hub acknowledged is there,
and no job was handed to a printer twice. It prints p50/p95/p99 and throughput per kind
of request and phase, the error counts and the load average, and exits non-zero if a
steady phase had a server error, a write is lost, or the queue did not drain.

    python bench/scale.py            # the full run (make bench-scale): about 2 minutes of load
    python bench/scale.py --short    # the CI run: 45 seconds of load on a smaller data set
    SCALE_KEEP=1 …                   # keep the folder (logs, request log, acknowledgements)

Everything started is stopped and its folder removed however the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Profile:
    size: str  # bench/scale_data.py SIZES
    users: int  # simulated people, fixed
    seconds: int  # locust's whole run
    steady_until: float  # seconds into the run; faults follow
    faults: tuple[tuple[float, str], ...]  # (seconds into the run, fault)
    # A print job whose preparation failed while PostgreSQL was down waits for the print
    # queue's sweep (every 60 s, after its lease) to be prepared again: 141 s once.
    drain_timeout: float


FULL = Profile(
    size="full",
    users=10,
    seconds=120,
    steady_until=40,
    faults=((40, "kill-worker"), (48, "restart-redis"), (56, "restart-postgres"), (70, "kill-gunicorn")),
    drain_timeout=300,
)
SHORT = Profile(
    size="short",
    users=4,
    seconds=45,
    steady_until=12,
    faults=((12, "kill-worker"), (13, "restart-redis"), (14, "restart-postgres"), (16, "kill-gunicorn")),
    drain_timeout=300,
)
RECOVERY_GRACE = 4.0  # seconds after the last part is back before the recovery phase counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    """One process the harness runs, in its own session so a kill reaches its children."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Children left in the session (a prefork pool) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class Postgres:
    """initdb and pg_ctl as scripts/with-postgres does, with durability left on: the
    fault run restarts it with an immediate stop and checks nothing acknowledged is lost."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.bin = self._find_bin()
        self.run_as: list[str] = []
        if os.getuid() == 0:
            user = (
                "postgres"
                if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0
                else "nobody"
            )
            self.run_as = ["runuser", "-u", user, "--"]
            shutil.chown(folder, user)
        folder.chmod(0o755)
        self.url = f"postgres://fabhub@127.0.0.1:{self.port}/fabhub"

    @staticmethod
    def _find_bin() -> Path:
        if os.environ.get("PG_BIN"):
            return Path(os.environ["PG_BIN"])
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if found:
            return found[-1].parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).parent
        raise SystemExit("PostgreSQL's initdb/pg_ctl were not found: install PostgreSQL or set PG_BIN.")

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def init(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", "fabhub",
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.start()
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "fabhub", "fabhub"],
            check=True,
        )

    def start(self) -> None:
        self.pg_ctl(
            "-l", str(self.folder / "server.log"), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=200", "start",
        )  # fmt: skip

    def crash_and_restart(self) -> None:
        """An immediate stop is a crash for PostgreSQL: it replays its WAL on start."""
        self.pg_ctl("-m", "immediate", "-w", "stop")
        time.sleep(1.0)
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self.pg_ctl("-m", "immediate", "-w", "stop")


class Proxy:
    """A round-robin TCP proxy for the two gunicorn instances: each new connection goes to
    the next backend, and to the one after when that refuses (a load balancer's retry of
    a connect, never of a request already sent)."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = free_port()
        self.turn = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self.ready.set()
        with contextlib.suppress(RuntimeError):
            self.loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.backends)):
            port = self.backends[self.turn % len(self.backends)]
            self.turn += 1
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class Harness:
    profile: Profile
    folder: Path
    services: dict[str, Service] = field(default_factory=dict)
    postgres: Postgres | None = None
    proxy: Proxy | None = None
    redis_port: int = 0
    gunicorn_ports: list[int] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    fault_errors: list[str] = field(default_factory=list)
    samples: dict[str, tuple[float, dict[str, tuple[float, float]]]] = field(default_factory=dict)
    t0: float = 0.0

    # -- the set-up -------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        assert self.postgres is not None
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "hub.settings",
            "DEBUG": "0",
            "SECRET_KEY": f"scale-harness-{self.folder.name}-not-a-secret-for-deployment",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.postgres.url,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "REDIS_CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "FABHUB_DATA_DIR": str(self.folder / "data"),
            "FABHUB_EMAIL_NOTIFICATIONS": "0",
        }
        env.pop("CELERY_RESULT_BACKEND", None)
        return env

    def redis_service(self) -> Service:
        return Service(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(self.folder / "redis")],
            dict(os.environ), self.folder / "redis.log",
        )  # fmt: skip

    def gunicorn(self, index: int) -> Service:
        # Keep-alive longer than any pause of a simulated person, as behind a load balancer
        # (whose idle timeout must be the shorter): with 5 s, gunicorn closing an idle
        # connection just as the next request went out dropped that request (seen once
        # in a recovery phase); the proxy, like TCP balancers, does not retry a request.
        port = self.gunicorn_ports[index]
        return Service(
            f"gunicorn-{index}",
            [str(BIN / "gunicorn"), "hub.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--threads", "4", "--timeout", "120", "--keep-alive", "75", "--access-logfile", "-"],
            self.env(), self.folder / f"gunicorn-{index}.log",
        )  # fmt: skip

    def worker(self, index: int) -> Service:
        return Service(
            f"worker-{index}",
            [str(BIN / "celery"), "-A", "hub", "worker", "--pool", "prefork", "--concurrency", "1",
             "--loglevel", "INFO", "-n", f"worker{index}@scale", "--without-gossip", "--without-mingle"],
            self.env(), self.folder / f"worker-{index}.log",
        )  # fmt: skip

    def start_all(self) -> dict:
        (self.folder / "redis").mkdir()
        (self.folder / "data").mkdir()
        (self.folder / "pg").mkdir()
        self.postgres = Postgres(self.folder / "pg")
        self.postgres.init()
        self.redis_port = free_port()
        self.services["redis"] = self.redis_service()
        self.services["redis"].start()
        self.wait_redis()
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        started = time.monotonic()
        out = subprocess.run(
            [str(BIN / "python"), "bench/scale_data.py", "load", "--size", self.profile.size, "--out",
             str(self.folder / "plan.json")],
            cwd=ROOT, env=self.env(), check=True, capture_output=True, text=True,
        )  # fmt: skip
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        loaded["load_seconds"] = round(time.monotonic() - started, 1)
        self.gunicorn_ports = [free_port(), free_port()]
        for index in (0, 1):
            self.services[f"gunicorn-{index}"] = self.gunicorn(index)
            self.services[f"worker-{index}"] = self.worker(index)
        self.services["beat"] = Service(
            "beat",
            [str(BIN / "celery"), "-A", "hub", "beat", "--loglevel", "INFO", "--schedule",
             str(self.folder / "beat-schedule")],
            self.env(), self.folder / "beat.log",
        )  # fmt: skip
        for name in ("gunicorn-0", "gunicorn-1", "worker-0", "worker-1", "beat"):
            self.services[name].start()
        for port in self.gunicorn_ports:
            self.wait_healthy(port, timeout=120)
        self.proxy = Proxy(self.gunicorn_ports)
        self.proxy.start()
        return loaded

    def manage(self, *args: str) -> None:
        subprocess.run(
            [str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env(), check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_redis(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True, text=True
            )
            if done.stdout.strip() == "PONG":
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)

    def wait_healthy(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn on {port} not healthy within {timeout:.0f} s")
            time.sleep(0.3)

    def stop_all(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for name in ("beat", "worker-0", "worker-1", "gunicorn-0", "gunicorn-1", "redis"):
            if name in self.services:
                self.services[name].stop()
        if self.postgres is not None:
            self.postgres.stop()

    # -- what each part costs ------------------------------------------------------------

    def usage(self) -> dict[str, tuple[float, float]]:
        """CPU seconds used so far and resident MB now, per part (processes and children)."""
        import psutil

        roots: dict[str, list[int]] = {"web": [], "workers": [], "beat": [], "redis": [], "postgres": []}
        for name, service in self.services.items():
            part = "web" if name.startswith("gunicorn") else "workers" if name.startswith("worker") else name
            if part in roots and service.running() and service.proc is not None:
                roots[part].append(service.proc.pid)
        assert self.postgres is not None
        with contextlib.suppress(OSError, ValueError):
            pid_file = self.postgres.folder / "data" / "postmaster.pid"
            roots["postgres"].append(int(pid_file.read_text().split()[0]))
        figures = {}
        for part, pids in roots.items():
            cpu = rss = 0.0
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(pid)
                    for proc in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            times = proc.cpu_times()
                            cpu += times.user + times.system + times.children_user + times.children_system
                            rss += proc.memory_info().rss
            figures[part] = (cpu, rss / 1e6)
        return figures

    def sample(self, label: str) -> None:
        self.samples[label] = (time.time(), self.usage())

    # -- the faults ---------------------------------------------------------------------

    def note(self, what: str) -> None:
        self.events.append((time.time(), what))
        print(f"  {time.time() - self.t0:6.1f} s  {what}", flush=True)

    def fault_logged(self, name: str) -> None:
        try:
            self.fault(name)
        except Exception as exc:  # a part that does not come back fails the run, not the thread
            self.fault_errors.append(f"{name}: {exc}")
            self.note(f"{name} FAILED: {exc}")

    def fault(self, name: str) -> None:
        assert self.postgres is not None
        if name == "kill-worker":
            self.services["worker-0"].signal(signal.SIGKILL)
            self.note("kill -9 Celery worker 0 (and its pool)")
            time.sleep(3)
            self.services["worker-0"] = self.worker(0)
            self.services["worker-0"].start()
            self.note("Celery worker 0 started again")
        elif name == "restart-redis":
            self.services["redis"].stop()
            self.note("Redis stopped")
            time.sleep(1)
            self.services["redis"] = self.redis_service()
            self.services["redis"].start()
            self.wait_redis()
            self.note("Redis back")
        elif name == "restart-postgres":
            self.note("PostgreSQL: immediate stop (a crash)")
            self.postgres.crash_and_restart()
            self.note("PostgreSQL back")
        elif name == "kill-gunicorn":
            self.services["gunicorn-1"].signal(signal.SIGKILL)
            self.note("kill -9 gunicorn 1 (master and workers)")
            time.sleep(3)
            self.services["gunicorn-1"] = self.gunicorn(1)
            self.services["gunicorn-1"].start()
            self.wait_healthy(self.gunicorn_ports[1], timeout=60)
            self.note("gunicorn 1 back and healthy")

    # -- the run ------------------------------------------------------------------------

    def run_load(self) -> tuple[float, float, float]:
        """Locust for the profile's time, faults on schedule; the phases' boundaries."""
        assert self.proxy is not None
        work = self.folder / "clones"
        work.mkdir()
        env = {
            **os.environ,
            "SCALE_PLAN": str(self.folder / "plan.json"),
            "SCALE_ACKS": str(self.folder / "acks.jsonl"),
            "SCALE_REQUESTS": str(self.folder / "requests.jsonl"),
            "SCALE_WORK": str(work),
        }
        locust = subprocess.Popen(
            [str(BIN / "locust"), "-f", str(ROOT / "bench" / "scale_locust.py"), "--headless",
             "--users", str(self.profile.users), "--spawn-rate", str(self.profile.users),
             "--run-time", f"{self.profile.seconds}s", "--stop-timeout", "10",
             "--host", f"http://127.0.0.1:{self.proxy.port}", "--only-summary",
             "--csv", str(self.folder / "locust"), "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=(self.folder / "locust.log").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.services["locust"] = Service("locust", [], env, self.folder / "locust.log", locust)
        self.t0 = time.time()
        steady = (self.t0 + 2, self.t0 + self.profile.steady_until)
        # Each fault on its own clock: a slow restart does not push the next fault back.
        threads = [
            threading.Timer(2, self.sample, args=("steady-from",)),
            threading.Timer(self.profile.steady_until - 0.1, self.sample, args=("steady-to",)),
        ]
        for thread in threads:
            thread.start()
        for at, name in self.profile.faults:
            thread = threading.Timer(max(0.0, self.t0 + at - time.time()), self.fault_logged, args=(name,))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        recovery_from = time.time() + RECOVERY_GRACE
        self.note(f"every part back; recovery phase from {recovery_from - self.t0:.1f} s")
        time.sleep(RECOVERY_GRACE)
        self.sample("recovery-from")
        time.sleep(max(0.0, self.t0 + self.profile.seconds - 1 - time.time()))
        self.sample("recovery-to")
        locust.wait(timeout=self.profile.seconds + 120)
        end = time.time()
        self.note("load ended")
        if recovery_from + 10 > end:
            raise RuntimeError("the recovery phase is shorter than 10 s: lengthen the run")
        return steady[0], steady[1], recovery_from

    def drain(self) -> dict:
        """Wait until Redis's queue is empty and no job or analysis waits for a worker."""
        deadline = time.monotonic() + self.profile.drain_timeout
        started = time.monotonic()
        while True:
            queued = subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "llen", "celery"], capture_output=True, text=True
            ).stdout.strip()
            left = json.loads(
                subprocess.run(
                    [str(BIN / "python"), "bench/scale_data.py", "pending"], cwd=ROOT, env=self.env(),
                    capture_output=True, text=True, check=True,
                ).stdout.strip().splitlines()[-1]
            )  # fmt: skip
            left["redis_queue"] = int(queued or 0)
            # Analyses still pending or running once the queue is empty are tasks that
            # failed while the database was down, or the one the killed worker held (its
            # message comes back after Redis's visibility timeout, an hour): the hub's own
            # sweep (designs.tasks.sweep_stale_analyses) re-queues them minutes later.
            # They are reported, not waited for.
            if not (left["redis_queue"] or left["preparing"]):
                left["seconds"] = round(time.monotonic() - started, 1)
                left["drained"] = True
                return left
            if time.monotonic() > deadline:
                left["drained"] = False
                return left
            time.sleep(2)

    def check(self) -> dict:
        acks = self.folder / "acks.jsonl"
        acks.touch()
        done = subprocess.run(
            [str(BIN / "python"), "bench/scale_data.py", "check", "--plan", str(self.folder / "plan.json"),
             "--acks", str(acks)],
            cwd=ROOT, env=self.env(), capture_output=True, text=True,
        )  # fmt: skip
        if not done.stdout.strip():
            raise RuntimeError(f"the check failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def report(requests: list[dict], phases: dict[str, tuple[float, float]]) -> dict[str, dict]:
    """Per phase: per kind p50/p95/p99, throughput, 4xx, 5xx and failed connections."""
    summary: dict[str, dict] = {}
    for phase, (start, end) in phases.items():
        rows = [r for r in requests if start <= r["t"] < end]
        kinds: dict[str, list[dict]] = {}
        for r in rows:
            kinds.setdefault(r["kind"], []).append(r)
        seconds = max(end - start, 1e-9)
        print(f"\n{phase}: {seconds:.0f} s, {len(rows)} requests, {len(rows) / seconds:.1f}/s")
        print(f"  {'kind':<20} {'n':>5} {'per s':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'4xx':>4} "
              f"{'5xx':>4} {'conn':>4}")  # fmt: skip
        table = {}
        for kind in sorted(kinds):
            group = kinds[kind]
            ms = [r["ms"] for r in group]
            row = {
                "n": len(group),
                "per_s": round(len(group) / seconds, 2),
                "p50": round(percentile(ms, 0.50)),
                "p95": round(percentile(ms, 0.95)),
                "p99": round(percentile(ms, 0.99)),
                "4xx": sum(1 for r in group if 400 <= r["status"] < 500),
                "5xx": sum(1 for r in group if r["status"] >= 500),
                "conn": sum(1 for r in group if r["status"] == 0 and r["error"]),
            }
            table[kind] = row
            print(f"  {kind:<20} {row['n']:>5} {row['per_s']:>6} {row['p50']:>7} {row['p95']:>7} "
                  f"{row['p99']:>7} {row['4xx']:>4} {row['5xx']:>4} {row['conn']:>4}")  # fmt: skip
        summary[phase] = table
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the 30-second CI run on a small data set")
    args = parser.parse_args()
    profile = SHORT if args.short else FULL
    for tool in ("redis-server", "redis-cli", "git", "git-lfs"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: scripts/ensure-test-tools installs it", file=sys.stderr)
            return 1
    folder = Path(tempfile.mkdtemp(prefix="fabhub-scale-"))
    folder.chmod(0o755)
    harness = Harness(profile=profile, folder=folder)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    status = 1
    try:
        print(f"scale harness ({profile.size}): {folder}; load average {os.getloadavg()}", flush=True)
        loaded = harness.start_all()
        print(f"data loaded in {loaded['load_seconds']} s: {json.dumps(loaded['counts'])} "
              f"(seconds: {json.dumps(loaded['seconds'])})", flush=True)  # fmt: skip
        load_before = os.getloadavg()
        print(f"load: {profile.users} users for {profile.seconds} s through the proxy; load average "
              f"{load_before}", flush=True)  # fmt: skip
        steady_from, steady_to, recovery_from = harness.run_load()
        load_after = os.getloadavg()
        requests = [
            json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines() if line.strip()
        ]
        end = max((r["t"] for r in requests), default=recovery_from) + 1
        summary = report(
            requests,
            {"steady": (steady_from, steady_to), "faults": (steady_to, recovery_from),
             "recovery": (recovery_from, end)},
        )  # fmt: skip
        costs = cost_report(harness.samples, requests)
        drained = harness.drain()
        print(f"\nqueue: {json.dumps(drained)}")
        failed_tasks = task_failures(folder)
        if failed_tasks:
            print(f"tasks that raised (not retried; see the worker logs): {json.dumps(failed_tasks)}")
        checked = harness.check()
        print(f"acknowledged writes: {json.dumps(checked)}")
        print(f"load average: before the load {load_before}, after {load_after}")
        bad_steady = {
            phase: sum(row["5xx"] + row["conn"] for row in summary[phase].values())
            for phase in ("steady", "recovery")
        }
        failures = []
        if any(bad_steady.values()):
            failures.append(f"server errors or dropped connections in steady phases: {bad_steady}")
        if checked["problem_count"]:
            failures.append(f"{checked['problem_count']} acknowledged writes missing or jobs handed twice")
        if not drained["drained"]:
            failures.append(f"the queue did not drain in {profile.drain_timeout:.0f} s")
        if harness.fault_errors:
            failures.append(f"parts that did not come back: {harness.fault_errors}")
        if not summary["steady"] or not summary["recovery"]:
            failures.append("a steady phase served no request")
        (folder / "summary.json").write_text(
            json.dumps({"loaded": loaded, "summary": summary, "drained": drained, "checked": checked, "failed_tasks": failed_tasks, "costs": costs,
                        "events": harness.events, "load_average": [load_before, load_after]}, indent=1)
        )  # fmt: skip
        if failures:
            print("\nFAILED: " + "; ".join(failures), file=sys.stderr)
            server_errors(folder)
        else:
            print("\nOK: no server error in the steady phases, nothing acknowledged lost, the queue drained")
            status = 0
    finally:
        harness.stop_all()
        if "locust" in harness.services:
            harness.services["locust"].stop()
        if os.environ.get("SCALE_KEEP") == "1":
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return status


def cost_report(samples: dict, requests: list[dict]) -> dict[str, dict]:
    """CPU per request and memory of each part, in the two phases where nothing was down:
    what a machine's cores and memory buy, whatever else the machine was running."""
    costs: dict[str, dict] = {}
    print("\ncost per request (CPU ms per request served; resident memory at the phase's end):")
    for phase in ("steady", "recovery"):
        if f"{phase}-from" not in samples or f"{phase}-to" not in samples:
            continue
        (t1, before), (t2, after) = samples[f"{phase}-from"], samples[f"{phase}-to"]
        served = sum(1 for r in requests if t1 <= r["t"] < t2)
        row = {"requests": served, "seconds": round(t2 - t1, 1)}
        for part in after:
            cpu = after[part][0] - before.get(part, (0.0, 0.0))[0]
            row[part] = {"cpu_s": round(cpu, 2), "cpu_ms_per_request": round(1000 * cpu / max(served, 1), 1),
                         "cores": round(cpu / max(t2 - t1, 1e-9), 2), "rss_mb": round(after[part][1])}  # fmt: skip
        costs[phase] = row
        parts = ", ".join(
            f"{part} {row[part]['cpu_ms_per_request']} ms ({row[part]['cores']} cores, {row[part]['rss_mb']} MB)"
            for part in after
        )
        print(f"  {phase}: {served} requests in {row['seconds']} s; {parts}")
    return costs


def task_failures(folder: Path) -> dict[str, int]:
    """Tasks that ended in an exception, by task and exception: a worker log's 'raised unexpected'."""
    found: dict[str, int] = {}
    for log in sorted(folder.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "raised unexpected:" not in line:
                continue
            task = line.split("] Task ", 1)[-1].split("[", 1)[0]
            error = line.split("raised unexpected: ", 1)[1].split("(", 1)[0]
            found[f"{task}: {error}"] = found.get(f"{task}: {error}", 0) + 1
    return found


def server_errors(folder: Path) -> None:
    """The 5xx lines of the gunicorn access logs, and the tracebacks beside them."""
    for log in sorted(folder.glob("gunicorn-*.log")):
        lines = log.read_text(errors="replace").splitlines()
        hits = [line for line in lines if '" 50' in line]
        if hits:
            print(f"--- {log.name}: {len(hits)} 5xx", file=sys.stderr)
            print("\n".join(hits[:10]), file=sys.stderr)
        traces = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
        for i in traces[:3]:
            print("\n".join(lines[i : i + 40]), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
