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


# Password resets are for people who cannot sign in: they read no credential at all.
CREDENTIAL_FREE = {"/api/password-reset/", "/api/password-reset/confirm/"}


def test_every_operation_accepts_the_token(schema):
    assert len(list(operations(schema))) > 50  # a schema that lost its paths would pass below
    for path, method, operation in operations(schema):
        if path == "/api/schema/":
            continue
        if path in CREDENTIAL_FREE:
            assert not operation.get("security"), (method, path)
            continue
        names = {name for requirement in operation["security"] for name in requirement}
        assert {"tokenAuth", "tokenBasicAuth", "cookieAuth"} <= names, (method, path)


def test_an_operation_behind_sign_in_does_not_claim_anonymous_access(schema):
    assert {} not in schema["paths"]["/api/me/"]["get"]["security"]
    assert {} in schema["paths"]["/api/designs/"]["get"]["security"]


def test_the_error_body_is_a_component(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"]
    assert set(error["properties"]) == {"detail", "code"}


def test_a_write_with_a_body_documents_400_401_403_and_413(schema):
    responses = schema["paths"]["/api/tokens/"]["post"]["responses"]
    assert {"201", "400", "401", "403", "413"} <= set(responses)
    assert "404" not in responses  # no path parameter: nothing to be missing
    bad_request = responses["400"]["content"]["application/json"]["schema"]
    assert bad_request == {
        "oneOf": [{"$ref": "#/components/schemas/Error"}, {"$ref": "#/components/schemas/FieldErrors"}]
    }
    assert responses["403"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_a_read_without_parameters_documents_only_401(schema):
    assert set(schema["paths"]["/api/me/"]["get"]["responses"]) == {"200", "401"}


def test_an_operation_on_a_named_thing_documents_404(schema):
    responses = schema["paths"]["/api/tokens/{token_id}/"]["delete"]["responses"]
    assert {"204", "401", "403", "404"} == set(responses)


def test_a_list_with_query_parameters_documents_400(schema):
    assert "400" in schema["paths"]["/api/designs/"]["get"]["responses"]


def test_views_declare_the_conflicts_and_read_refusals_they_raise(schema):
    paths = schema["paths"]
    assert "409" in paths["/api/labs/"]["post"]["responses"]  # a lab name taken
    assert "409" in paths["/api/designs/{owner}/{slug}/upload/"]["post"]["responses"]  # a branch moved
    assert "409" not in paths["/api/labs/{lab}/closures/"]["post"]["responses"]
    assert "403" in paths["/api/labs/{lab}/members/"]["get"]["responses"]  # members only
    assert "403" in paths["/api/designs/{owner}/{slug}/collaborators/"]["get"]["responses"]  # the owner's
    assert "403" not in paths["/api/labs/{lab}/"]["get"]["responses"]
    booking = paths["/api/bookings/"]["post"]["responses"]
    assert "404" in booking  # a machine id that does not exist
    assert booking["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
