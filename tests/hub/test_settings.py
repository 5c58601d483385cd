"""Settings come from the environment; production refuses to start without a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_settings(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    return subprocess.run(
        [sys.executable, "-c", f"import django; from django.conf import settings; settings.DEBUG; {code}"],
        env={**clean, "DJANGO_SETTINGS_MODULE": "hub.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    result = run_settings({"DEBUG": "0", "FABHUB_DATA_DIR": str(tmp_path)}, "print('started')")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_defaults_to_sqlite_under_the_data_dir_and_in_process_tasks(tmp_path):
    result = run_settings(
        {"DEBUG": "1", "FABHUB_DATA_DIR": str(tmp_path)},
        "print(settings.DATABASES['default']['NAME']); print(settings.CELERY_TASK_ALWAYS_EAGER); print(settings.REPOS_DIR)",
    )
    assert result.returncode == 0, result.stderr
    name, eager, repos = result.stdout.split()
    assert name == str(tmp_path / "fabhub.sqlite3")
    assert eager == "True"
    assert repos == str(tmp_path / "repos")


def test_database_url_and_broker_switch_to_the_scaled_set_up(tmp_path):
    result = run_settings(
        {
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://fab:pw@db.internal:5432/fabhub",
            "CELERY_BROKER_URL": "redis://redis:6379/0",
            "FABHUB_DATA_DIR": str(tmp_path),
        },
        "d = settings.DATABASES['default']; print(d['ENGINE'], d['HOST'], d['NAME']); print(settings.CELERY_TASK_ALWAYS_EAGER)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "db.internal", "fabhub", "False"]
