"""Lab agents: command latency through an agent, and the hub's cost of many connected agents.

The hub is served as `make run` serves it (gunicorn, 2 workers of 4 threads, the access
log on, the embedded ticker polling every printer every FABHUB_PRINT_TICK_S seconds),
with DEBUG off, on a throw-away SQLite database. Each lab has one agent with one printer;
the agents are the real `fabhub_agent.runner.Agent` driving in-process `SimulatedPrinter`s.

1. Latency, hub → printer, on a quiet hub: a few agents connected at poll interval P;
   the bench process calls `AgentDriver(machine).pause()` / `.resume()` (what the
   dispatcher does) and times until the simulated printer's method ran, and until the
   driver call returned (the agent's answer reached the hub). Baseline: the same
   printer's method called directly. Goal: p99 hub → printer ≤ P + 0.2 s.
2. Load: N agents (default 500) syncing every P seconds, run by load-generator
   processes of threads, started staggered over one interval; after a warm-up, a steady
   window. Measured: the gunicorn master and workers' CPU time (/proc, utime + stime of
   the whole process tree) → average cores; their RSS before the N agents connected and
   at the end → memory per agent; every sync that was not a 200 (as the agents saw it
   and as gunicorn's access log has it); requests per second; sync latency as the
   agents saw it; the load generator's own CPU and the whole machine's, to show the
   generator was not what limited. The latency of part 1 is sampled again under load.
   Goals: no error, at most one core on average.

Run `python bench/agents.py [--agents 500 --seconds 60 --poll 3]`; exits 1 if a goal is
missed. SQLite only: the figures are for the embedded set-up `make run` starts.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LATENCY_AGENTS = 10
LATENCY_SAMPLES = 100
SLACK_S = 0.2
MAX_CORES = 1.0
TICK_S = 5
THREADS_PER_PROCESS = 125
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SYNC_LINE = re.compile(r'"POST /api/agent/v1/sync HTTP/[0-9.]+" (\d{3}) ')


# -- the agents: the real runner with a simulated printer, every sync timed ------------------


class Recorder:
    """A simulated printer that notes when pause or resume reached it."""

    def __init__(self) -> None:
        from fabhub_agent.simulated import SimulatedPrinter

        self.ran: list[float] = []
        self.driver = SimulatedPrinter(print_seconds=3600)
        for name in ("pause", "resume"):
            setattr(self.driver, name, self._noted(getattr(self.driver, name)))

    def _noted(self, method):
        def call() -> None:
            self.ran.append(time.monotonic())
            method()

        return call


def make_agent(url: str, token: str, printer_id: int, driver, state_root: Path, poll: float, records: list):
    """A `fabhub_agent` Agent whose hub client appends (start, seconds, outcome) per sync."""
    from fabhub_agent.config import AgentConfig
    from fabhub_agent.hub import HubClient, HubRefused, HubUnreachable
    from fabhub_agent.runner import Agent

    class TimedHub(HubClient):
        def sync(self, reports: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
            start = time.monotonic()
            try:
                answer = super().sync(reports, **fields)
            except HubRefused as exc:
                records.append((start, time.monotonic() - start, f"refused {exc.status}: {exc.message[:80]}"))
                raise
            except HubUnreachable as exc:
                cause = repr(exc.__cause__ or exc)[:100]
                records.append((start, time.monotonic() - start, f"unreachable: {cause}"))
                raise
            records.append((start, time.monotonic() - start, "ok"))
            return answer

    config = AgentConfig(
        hub_url=url, token=token, state_dir=state_root / f"agent-{printer_id}", printers=(), poll_seconds=poll
    )
    return Agent(config, hub=TimedHub(url, token), drivers={printer_id: driver})


def drive(agent, stop: threading.Event, delay: float, records: list) -> None:
    """The agent's own loop (Agent.run), counting a round that raised instead of logging it."""
    if stop.wait(delay):
        return
    while True:
        try:
            wait = agent.step()
        except Exception as exc:  # counted as an error, and the agent goes on as run() would
            records.append((time.monotonic(), 0.0, f"round failed: {exc!r}"[:120]))
            wait = agent.poll_seconds
        # As Agent.run: a finished command wakes the loop to send its answer at once.
        agent.wake.wait(wait)
        agent.wake.clear()
        if stop.is_set():
            return


def load_process(url, agents, poll, state_root, first_delay, spacing, stop, results) -> None:
    """One load-generator process: a thread per agent; sends its sync records when told to stop."""
    sys.path.insert(0, str(ROOT))
    from fabhub_agent.simulated import SimulatedPrinter

    logging.getLogger("fabhub_agent").setLevel(logging.CRITICAL + 1)  # counted, not logged
    records: list = []
    local = threading.Event()
    threads = []
    for index, (printer_id, token) in enumerate(agents):
        agent = make_agent(url, token, printer_id, SimulatedPrinter(), Path(state_root), poll, records)
        thread = threading.Thread(target=drive, args=(agent, local, first_delay + index * spacing, records))
        thread.start()
        threads.append(thread)
    stop.wait()
    local.set()
    for thread in threads:
        thread.join()
    results.put(records)


# -- processes: CPU and memory from /proc --------------------------------------------------


def process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
            except OSError:
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _stat_fields(pid: int) -> list[str]:
    # Fields after the command name, which may hold spaces: [0] is the state (field 3).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(values) / CLOCK_TICKS
    idle = (values[3] + values[4]) / CLOCK_TICKS
    return total - idle, total


# -- the hub ---------------------------------------------------------------------------------


def boot() -> Path:
    os.environ["FABHUB_EMAIL_NOTIFICATIONS"] = "0"
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from _django import setup

    return setup()


def fill(count: int) -> list[tuple[int, str]]:
    """`count` labs, each with one printer driven by its own agent: (printer id, token)."""
    from django.db import transaction

    from hub.models import User
    from machines.printing import agents
    from tests.machines.factories import make_lab
    from tests.printing.factories import make_printer

    manager = User.objects.create_user("manager", password="x")
    out = []
    logging.getLogger("machines").setLevel(logging.WARNING)  # a line per agent created
    with transaction.atomic():  # one commit, not thousands of fsyncs
        for n in range(count):
            lab = make_lab(manager, slug=f"lab-{n}", hours="00:00-00:00")
            printer = make_printer(lab, slug="mk4")
            agent, token = agents.agent_create(lab=lab, actor=manager, name=f"Pi {n}")
            agents.machine_set_agent(machine=printer.machine, actor=manager, agent=agent)
            out.append((printer.pk, token))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(data_dir: Path, poll: int, tick: int, log: Path) -> tuple[subprocess.Popen, str]:
    """gunicorn as `make run` starts it (DEBUG off, as deployed); returns once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hub.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-agents",
        "FABHUB_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'fabhub.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FABHUB_AGENT_POLL_S": str(poll),
        "FABHUB_PRINT_TICK_S": str(tick),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "hub.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "600",
                "--keep-alive",
                "10",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/agent/v1/sync", timeout=2)  # a GET: 405
        except urllib.error.HTTPError:
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


# -- latency ---------------------------------------------------------------------------------


def sample_latency(machine_id: int, recorder: Recorder, poll: float, until, out: list) -> None:
    """Pause and resume through the agent driver, at random moments of the agent's cycle."""
    from django.db import connection

    from machines.models import Machine
    from machines.printing.agents import AgentDriver
    from machines.printing.drivers import PrinterError

    rng = random.Random(machine_id)
    driver = AgentDriver(Machine.objects.get(pk=machine_id))
    try:
        n = 0
        while until(n):
            # A random wait: a command issued right after the last answer would always
            # wait a whole interval for the agent's next sync.
            time.sleep(rng.uniform(0, poll))
            call = driver.pause if n % 2 == 0 else driver.resume
            n += 1
            seen = len(recorder.ran)
            start = time.monotonic()
            try:
                call()
            except PrinterError as exc:
                out.append(("error", exc.message))
                continue
            returned = time.monotonic()
            reached = recorder.ran[seen] if len(recorder.ran) > seen else None
            out.append((None if reached is None else reached - start, returned - start))
    finally:
        connection.close()


def start_samplers(latency_agents, recorders, poll, until) -> tuple[list[threading.Thread], list]:
    out: list = []
    threads = [
        threading.Thread(target=sample_latency, args=(printer_id, recorders[printer_id], poll, until, out))
        for printer_id, _ in latency_agents
    ]
    for thread in threads:
        thread.start()
    return threads, out


def joined(started: tuple[list[threading.Thread], list]) -> list:
    threads, out = started
    for thread in threads:
        thread.join()
    return out


def direct_latency(runs: int) -> list[float]:
    recorder = Recorder()
    timings = []
    for n in range(runs):
        start = time.monotonic()
        (recorder.driver.pause if n % 2 == 0 else recorder.driver.resume)()
        timings.append(recorder.ran[-1] - start)
    return timings


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def print_latency(label: str, samples: list, poll: float) -> bool:
    """Print p50/p99 of one sampling; True if the hub → printer p99 meets the goal."""
    errors = [s for s in samples if s[0] == "error"]
    reached = [s[0] for s in samples if s[0] != "error" and s[0] is not None]
    returned = [s[1] for s in samples if s[0] != "error"]
    missing = len(samples) - len(errors) - len(reached)
    line = f"{label:<34}{len(reached):>5}"
    if reached:
        line += f"{pct(reached, 50):>9.2f}s{pct(reached, 99):>8.2f}s{pct(returned, 50):>9.2f}s{pct(returned, 99):>8.2f}s"
    print(line + (f"   {len(errors)} errors, {missing} never reached" if errors or missing else ""))
    for _, message in errors[:3]:
        print(f"    error: {message}")
    return bool(reached) and not errors and not missing and pct(reached, 99) <= poll + SLACK_S


# -- the run ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500, help="agents in the load part")
    parser.add_argument("--seconds", type=float, default=60, help="steady-state window")
    parser.add_argument("--poll", type=int, default=3, help="FABHUB_AGENT_POLL_S, whole seconds")
    parser.add_argument(
        "--tick", type=int, default=TICK_S, help="FABHUB_PRINT_TICK_S (0: no ticker, the syncs' cost alone)"
    )
    parser.add_argument("--processes", type=int, default=0, help="load-generator processes (0: auto)")
    args = parser.parse_args()
    poll = args.poll

    data_dir = boot()
    state_root = Path(
        tempfile.mkdtemp(prefix="fabhub-bench-agents-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    hub = None
    local_stop = threading.Event()
    try:
        started = time.monotonic()
        every = fill(LATENCY_AGENTS + args.agents)
        latency_agents, load_agents = every[:LATENCY_AGENTS], every[LATENCY_AGENTS:]
        print(
            f"{len(every)} labs, each with an agent and a printer ({time.monotonic() - started:.0f} s to set up)"
        )
        log = data_dir / "gunicorn.log"
        hub, url = serve(data_dir, poll, args.tick, log)

        # The latency agents run in this process for the whole bench, so their printers'
        # methods can be timed; their syncs are counted apart from the load's.
        logging.getLogger("fabhub_agent").setLevel(logging.ERROR)
        own_records: list = []
        recorders = {printer_id: Recorder() for printer_id, _ in latency_agents}
        for index, (printer_id, token) in enumerate(latency_agents):
            agent = make_agent(
                url, token, printer_id, recorders[printer_id].driver, state_root, poll, own_records
            )
            thread = threading.Thread(
                target=drive,
                args=(agent, local_stop, index * poll / LATENCY_AGENTS, own_records),
                daemon=True,
            )
            thread.start()
        time.sleep(poll + 1)

        # 1. latency on a quiet hub
        direct = direct_latency(LATENCY_SAMPLES)
        per_agent = -(-LATENCY_SAMPLES // LATENCY_AGENTS)
        quiet = joined(start_samplers(latency_agents, recorders, poll, lambda n: n < per_agent))

        # 2. the load
        gunicorn = process_tree(hub.pid)
        rss_before = rss_mb(gunicorn)
        processes = args.processes or max(1, -(-len(load_agents) // THREADS_PER_PROCESS))
        context = mp.get_context("spawn")
        stop = context.Event()
        results = context.Queue()
        chunks = [load_agents[n::processes] for n in range(processes)]
        spacing = poll / max(1, len(load_agents))
        workers = [
            context.Process(
                target=load_process,
                args=(url, chunk, poll, str(state_root), n * spacing, spacing * processes, stop, results),
            )
            for n, chunk in enumerate(chunks)
        ]
        for worker in workers:
            worker.start()
        pids = [w.pid for w in workers if w.pid is not None]
        time.sleep(poll + max(5, 2 * poll))  # all started, then a few rounds to settle

        window_start = time.monotonic()
        hub_cpu, gen_cpu, busy = cpu_seconds(gunicorn), cpu_seconds(pids), machine_busy()
        each_cpu = [cpu_seconds([pid]) for pid in gunicorn]
        rss_start = rss_mb(gunicorn)
        window_end = window_start + args.seconds
        sampling = start_samplers(
            latency_agents, recorders, poll, lambda n: time.monotonic() < window_end - poll
        )
        time.sleep(max(0.0, window_end - time.monotonic()))
        elapsed = time.monotonic() - window_start
        hub_cpu = cpu_seconds(gunicorn) - hub_cpu
        each_cpu = [cpu_seconds([pid]) - before for pid, before in zip(gunicorn, each_cpu, strict=True)]
        gen_cpu = cpu_seconds(pids) - gen_cpu
        busy_end = machine_busy()
        machine_cores = (busy_end[0] - busy[0]) / elapsed
        machine_all = (busy_end[1] - busy[1]) / elapsed
        rss_end = rss_mb(gunicorn)
        workers_alive = process_tree(hub.pid) == gunicorn

        loaded = joined(sampling)
        stop.set()
        records = [r for _ in workers for r in results.get(timeout=120)]
        for worker in workers:
            worker.join(timeout=60)
        local_stop.set()
    finally:
        if hub is not None:
            hub.terminate()
            try:
                hub.wait(timeout=20)
            except subprocess.TimeoutExpired:
                hub.kill()
        shutil.rmtree(state_root, ignore_errors=True)

    access = SYNC_LINE.findall(log.read_text(errors="replace"))
    server_errors = sum(1 for status in access if status != "200")
    gunicorn_text = log.read_text(errors="replace")
    tracebacks = gunicorn_text.count("Traceback")
    timeouts = gunicorn_text.count("WORKER TIMEOUT")
    window = [r for r in records if window_start <= r[0] < window_start + elapsed]
    all_errors = [r for r in records + own_records if r[2] != "ok"]
    ok = [r[1] for r in window if r[2] == "ok"]
    shutil.rmtree(data_dir, ignore_errors=True)

    print(
        f"hub: gunicorn, 2 workers x 4 threads, SQLite, DEBUG off, ticker every {args.tick} s; agents poll every {poll} s"
    )
    print()
    print(
        f"1. command latency, hub -> printer and back (P = {poll} s; goal p99 hub -> printer <= {poll + SLACK_S:.1f} s)"
    )
    print(f"{'':<39}{'reached the printer':>19}{'driver returned':>19}")
    print(f"{'':<34}{'n':>5}{'p50':>10}{'p99':>9}{'p50':>10}{'p99':>9}")
    print(
        f"{'direct driver call':<34}{len(direct):>5}{pct(direct, 50) * 1e6:>7.1f} us{pct(direct, 99) * 1e6:>6.1f} us"
    )
    quiet_ok = print_latency(f"agent, {LATENCY_AGENTS} agents connected", quiet, poll)
    loaded_ok = print_latency(f"agent, {LATENCY_AGENTS + args.agents} agents connected", loaded, poll)
    print()
    print(f"2. {len(load_agents)} agents for {elapsed:.0f} s (goals: no error, <= {MAX_CORES:.0f} core)")
    rate = len(window) / elapsed
    expected = len(load_agents) / poll
    per_sync = hub_cpu / max(1, len(window))
    print(
        f"  syncs served          {len(window)} ({rate:.0f}/s; {expected:.0f}/s expected at one per interval)"
    )
    if ok:
        print(
            f"  sync latency          mean {statistics.mean(ok) * 1000:.0f} ms, p50 {pct(ok, 50) * 1000:.0f} ms,"
            f" p99 {pct(ok, 99) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms"
        )
    print(
        f"  hub CPU               {hub_cpu:.1f} s = {hub_cpu / elapsed:.2f} cores"
        f" ({per_sync * 1000:.1f} ms per sync, the ticker's polls included)"
    )
    if rate < 0.95 * expected:
        # Behind: the CPU per sync at the rate the agents ask for (the polls scale with the
        # printers, not the syncs, so this is an estimate).
        print(f"  at the full rate      about {per_sync * expected:.2f} cores would be needed")
    split = ", ".join(f"{cpu / elapsed:.2f}" for cpu in each_cpu)
    print(f"  hub CPU by process    {split} (master, then each worker; a worker runs on one core at a time)")
    print(f"  load generator CPU    {gen_cpu / elapsed:.2f} cores in {len(workers)} processes")
    print(
        f"  whole machine         {machine_cores:.2f} of {machine_all:.0f} cores busy (other work included)"
    )
    print(
        f"  hub RSS               {rss_before:.0f} MB before, {rss_start:.0f} MB at the window's start,"
        f" {rss_end:.0f} MB at its end ({len(gunicorn)} processes)"
    )
    per_agent_kb = (rss_end - rss_before) * 1024 / len(load_agents)
    print(f"  memory per agent      {per_agent_kb:.0f} kB")
    print(
        f"  errors                {len(all_errors)} seen by agents (whole run), {server_errors} non-200 syncs"
        f" of {len(access)} in gunicorn's log, {tracebacks} tracebacks, {timeouts} worker timeouts"
        + ("" if workers_alive else ", a worker was replaced")
    )
    kinds: dict[str, int] = {}
    for _, _, outcome in all_errors:
        kinds[outcome] = kinds.get(outcome, 0) + 1
    for outcome, count in sorted(kinds.items(), key=lambda item: -item[1])[:5]:
        print(f"    {count} x {outcome}")

    failures = []
    if not (quiet_ok and loaded_ok):
        failures.append(f"p99 command latency hub -> printer over {poll + SLACK_S:.1f} s (or errors)")
    if hub_cpu / elapsed > MAX_CORES:
        failures.append(f"the hub used {hub_cpu / elapsed:.2f} cores (limit {MAX_CORES:.0f})")
    if all_errors or server_errors or tracebacks or timeouts or not workers_alive:
        failures.append("errors while serving the agents")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
