"""`manage.py check --deploy` is clean with the production environment docs/deploy.md
documents, and the security headers it promises are on the answers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def production_environment(data_dir: Path) -> dict[str, str]:
    """The variables docs/deploy.md lists for a production hub behind its proxy."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {
        **keep,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "hub.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://hub.example.org",
        "FABHUB_PUBLIC_URL": "https://hub.example.org",
        "BEHIND_HTTPS_PROXY": "1",
        "EMAIL_HOST": "smtp.example.org",
        "FABHUB_DATA_DIR": str(data_dir),
    }


def test_the_deploy_check_is_clean_with_the_documented_production_environment(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_documented_environment_is_the_one_docs_deploy_lists(tmp_path):
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for name in production_environment(tmp_path):
        if name not in {"PATH", "HOME", "LANG", "DEBUG", "FABHUB_DATA_DIR"}:
            assert f"`{name}`" in deploy, f"docs/deploy.md does not document {name}"


@pytest.mark.django_db
def test_pages_carry_the_content_security_policy_and_referrer_policy(client: Client):
    response = client.get(reverse("login"))
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_only_the_api_reference_pages_allow_inline_style(client: Client):
    for name in ("api-docs", "api-redoc"):
        policy = client.get(reverse(name))["Content-Security-Policy"]
        assert "style-src 'self' 'unsafe-inline'" in policy
        assert "script-src 'self';" in policy + ";"


def test_behind_the_proxy_plain_http_is_redirected_and_hsts_is_sent(tmp_path):
    # A fresh process: these settings are read once, from the environment, at start-up.
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "c = Client(HTTP_HOST='hub.example.org');"
        "plain = c.get('/login/');"
        "tls = c.get('/login/', HTTP_X_FORWARDED_PROTO='https');"
        "print(plain.status_code, plain['Location']);"
        "print(tls.status_code, tls['Strict-Transport-Security']);"
        "print(bool(tls.cookies['csrftoken']['secure']))"
    )
    env = {**production_environment(tmp_path), "DJANGO_SETTINGS_MODULE": "hub.settings"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    plain, tls, cookie = out.stdout.strip().splitlines()[-3:]
    assert plain == "301 https://hub.example.org/login/"
    assert tls == "200 max-age=31536000; includeSubDomains"
    assert cookie == "True"  # the sign-in form's CSRF cookie is only ever sent over https
