"""The OpenAPI schema declares how the API authenticates and what each operation answers."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api):
    return api.get(reverse("api-schema"), {"format": "json"}).json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_schema_declares_the_token_as_bearer_and_basic_authentication(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["tokenAuth"]["description"],
    }
    assert schemes["tokenBasicAuth"]["type"] == "http"
    assert schemes["tokenBasicAuth"]["scheme"] == "basic"


def test_every_operation_accepts_the_token(schema):
    for path, method, operation in operations(schema):
        if path == "/api/schema/":
            continue
        names = {name for requirement in operation["security"] for name in requirement}
        assert {"tokenAuth", "tokenBasicAuth", "cookieAuth"} <= names, (method, path)


def test_an_operation_behind_sign_in_does_not_claim_anonymous_access(schema):
    assert {} not in schema["paths"]["/api/me/"]["get"]["security"]
    assert {} in schema["paths"]["/api/designs/"]["get"]["security"]
