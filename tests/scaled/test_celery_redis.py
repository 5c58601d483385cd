"""The scaled set-up for real: a Redis broker and a separate Celery worker process.

The suite starts Debian's redis-server on a free port and `celery worker` against it,
sharing the test database file and the data directory, then commits meshes through the
service and waits for the worker to analyse them — including after killing a worker
in the middle of an analysis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from designs.models import MeshAnalysis
from designs.services import analysis
from hub.celery import app as celery_app
from tests.conftest import database_url_for_subprocesses
from tests.factories import DesignFactory, UserFactory, commit_files
from tests.git.conftest import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "meshes"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
        != "PONG"
    ):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def celery_on_redis(redis_url):
    """Point the Celery app at Redis for this module, and back afterwards."""
    previous = (celery_app.conf.broker_url, celery_app.conf.task_always_eager)
    celery_app.conf.broker_url = redis_url
    celery_app.conf.task_always_eager = False
    reset_producer_pool()
    yield redis_url
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = previous
    reset_producer_pool()


@pytest.fixture
def broker(celery_on_redis, settings):
    """Send tasks to Redis instead of running them inline."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    return celery_on_redis


def reset_producer_pool() -> None:
    """Make Celery connect again with the current broker_url on its next send."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


class Worker:
    def __init__(self, redis_url: str, data_dir: Path, log: Path) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hub.settings",
            "DEBUG": "0",
            "SECRET_KEY": "celery-tests",
            "CELERY_BROKER_URL": redis_url,
            "FABHUB_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url_for_subprocesses(),
        }
        self.log = log
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "hub",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """A warm shutdown: the worker finishes its task, then its pool, then itself."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(predicate, *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}\n--- worker log ---\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.05)


def test_a_worker_on_redis_analyses_committed_meshes(broker, repos_dir, tmp_path):
    design = DesignFactory(owner=UserFactory())
    worker = Worker(broker, repos_dir.parent, tmp_path / "worker.log")
    try:
        commit_files(
            design,
            {
                "parts/knob.stl": (CORPUS / "prusa-i3" / "LCD-knob.stl").read_bytes(),
                "parts/broken.stl": b"solid nope\nthis is not a facet\n",
            },
        )
        # The commit queued one analysis per mesh (the worker may already be at them).
        assert sorted(MeshAnalysis.objects.values_list("path", flat=True)) == [
            "parts/broken.stl",
            "parts/knob.stl",
        ]
        wait_for(
            lambda: not MeshAnalysis.objects.filter(status__in=["pending", "running"]).exists(),
            timeout=60,
            what="the analyses",
            log=worker.log,
        )
        knob = MeshAnalysis.objects.get(path="parts/knob.stl")
        assert knob.status == "done" and knob.figures["triangles"] > 100
        broken = MeshAnalysis.objects.get(path="parts/broken.stl")
        assert broken.status == "failed" and broken.reason
    finally:
        worker.stop()


def big_stl(triangles: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(7)
    records = np.zeros(triangles, dtype=[("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])
    records["vertices"] = rng.random((triangles, 3, 3), dtype=np.float32) * 100
    return b"\0" * 80 + np.uint32(triangles).tobytes() + records.tobytes()


def test_an_analysis_whose_worker_is_killed_is_swept_back_and_finished(broker, repos_dir, tmp_path, settings):
    settings.FABHUB_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
    design = DesignFactory(owner=UserFactory())
    log = tmp_path / "worker.log"
    first = Worker(broker, repos_dir.parent, log)
    try:
        commit_files(design, {"soup.stl": big_stl(1_500_000)})
        row = MeshAnalysis.objects.get(path="soup.stl")
        wait_for(
            lambda: MeshAnalysis.objects.filter(pk=row.pk, status="running").exists(),
            timeout=60,
            what="the analysis to start",
            log=log,
        )
        first.kill()
    finally:
        first.stop()
    row.refresh_from_db()
    assert row.status == "running"  # the dead worker left it so

    second = Worker(broker, repos_dir.parent, log)
    try:
        requeued = analysis.analyses_sweep_stale(stale_after=timedelta(seconds=0))
        assert requeued == 1
        wait_for(
            lambda: MeshAnalysis.objects.filter(pk=row.pk, status__in=["done", "failed"]).exists(),
            timeout=120,
            what="the swept analysis",
            log=log,
        )
        row.refresh_from_db()
        assert row.attempts == 2
        assert row.status == "done", row.reason
    finally:
        second.stop()
