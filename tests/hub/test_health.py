"""`/healthz`: what load balancers, the compose file and the suite's servers poll."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def test_it_answers_ok_with_one_query_and_no_session():
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 1"]
    assert "sessionid" not in response.cookies


def test_it_answers_whatever_the_host_and_over_plain_http(settings):
    settings.ALLOWED_HOSTS = ["hub.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    # Every other address still checks the host.
    assert Client().get("/login/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_it_says_503_when_the_database_does_not_answer(monkeypatch):
    from django.db import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    # Standing in for a database that went away: the one part this test cannot stop.
    monkeypatch.setattr(connection, "cursor", refuse)
    response = Client().get("/healthz")
    assert response.status_code == 503


def _database_gone(monkeypatch):
    from django.db import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("the database system is starting up")

    # Standing in for PostgreSQL restarting (scripts/scale-harness does it for real).
    monkeypatch.setattr(connection, "cursor", refuse)


def test_an_api_call_meeting_a_restarting_database_is_a_503_not_a_500(monkeypatch):
    _database_gone(monkeypatch)
    response = Client().get("/api/designs/")
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response["Retry-After"] == "5"


def test_a_page_meeting_a_restarting_database_is_a_503_not_a_500(monkeypatch):
    _database_gone(monkeypatch)
    response = Client().get("/")
    assert response.status_code == 503
    assert "not answering" in response.content.decode()


def test_a_task_meeting_a_restarting_database_runs_again(monkeypatch):
    from django.db import OperationalError

    from hub.celery import app

    calls = []

    @app.task(name="tests.flaky_database_task")
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("the database system is starting up")
        return "done"

    # Eager, as in the embedded default: the retries run at once, in line.
    result = flaky.apply()
    assert calls == [1, 1, 1]
    assert result.get() == "done"
