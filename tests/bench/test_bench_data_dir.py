"""`bench/_django.setup()` makes a throw-away data directory per run: it must be gone once
the bench ends (they piled up in /tmp, a 1,000-commit repository each), and not before,
not even when a child forked from the bench ends first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

BENCH_RUN = """
import os, sys
import _django
data_dir = _django.setup()
child = os.fork()
if child == 0:
    sys.exit(0)  # a child that ends normally runs the exit handlers it inherited
os.waitpid(child, 0)
print(data_dir, data_dir.is_dir(), flush=True)
"""


@pytest.mark.slow
def test_a_bench_s_data_directory_outlives_a_forked_child_and_goes_with_the_bench(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_URL"))}
    env["TMPDIR"] = str(tmp_path)  # the bench's directory made where this test can see it
    run = subprocess.run(
        [sys.executable, "-c", BENCH_RUN], cwd=BENCH, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    data_dir, existed = run.stdout.split()[-2:]
    assert Path(data_dir).parent == tmp_path
    assert existed == "True"  # the child's exit left it
    assert not Path(data_dir).exists()  # the bench's exit removed it
