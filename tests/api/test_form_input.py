"""A form (multipart or urlencoded) meets the same rules as JSON: an empty value where the
schema says minLength 1 is a 400, not a silently applied default; a boolean is true/false."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.models import AccessToken
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_an_empty_optional_field_in_a_form_is_refused_not_defaulted(alice):
    # `scope` defaults to write: an empty one must not quietly mean write.
    response = client_for(alice).post(reverse("api-tokens"), {"name": "ci", "scope": ""}, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json() == {"scope": ["This field may not be blank."]}
    assert not AccessToken.objects.filter(name="ci").exists()


def test_an_empty_optional_field_in_json_is_refused(alice):
    response = client_for(alice).post(reverse("api-tokens"), {"name": "ci", "scope": ""}, format="json")
    assert response.status_code == 400, response.content
    assert "scope" in response.json()


def test_designs_take_json_only_as_a_form_cannot_spell_a_list_of_one(alice):
    payload = {"slug": "bracket", "title": "Bracket", "licence": "CERN-OHL-S-2.0", "tags": "bracket"}
    response = client_for(alice).post(reverse("api-design-list"), payload, format="multipart")
    assert response.status_code == 415


def test_an_empty_expiry_in_json_is_refused(alice):
    response = client_for(alice).post(reverse("api-tokens"), {"name": "ci", "expires_at": ""}, format="json")
    assert response.status_code == 400, response.content
    assert "expires_at" in response.json()
    assert not AccessToken.objects.filter(name="ci").exists()


def test_an_empty_expiry_in_a_form_is_refused_not_read_as_never(alice):
    response = client_for(alice).post(
        reverse("api-tokens"), {"name": "ci", "expires_at": ""}, format="multipart"
    )
    assert response.status_code == 400, response.content
    assert response.json() == {"expires_at": ["This field may not be blank."]}
    assert not AccessToken.objects.filter(name="ci").exists()


def test_a_form_spells_null_as_null(alice):
    response = client_for(alice).post(
        reverse("api-tokens"), {"name": "ci", "expires_at": "null"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert AccessToken.objects.get(name="ci").expires_at is None


def test_a_design_tag_starts_with_a_letter_or_digit(alice):
    for tags, status in ((["{}"], 400), (["3d-printing", "Body panel"], 201)):
        payload = {"slug": "bracket", "title": "Bracket", "licence": "CERN-OHL-S-2.0", "tags": tags}
        response = client_for(alice).post(reverse("api-design-list"), payload, format="json")
        assert response.status_code == status, response.content
    assert sorted(response.json()["tags"]) == ["3d-printing", "body-panel"]


@pytest.mark.parametrize("value", ["0", "1", "on", "yes", ""])
def test_a_form_boolean_is_true_or_false(alice, value):
    from tests.machines.factories import make_lab

    make_lab(alice)
    response = client_for(alice).patch(
        reverse("api-lab-print-settings", args=["fablab"]), {"requires_approval": value}, format="multipart"
    )
    assert response.status_code == 400, response.content
    assert response.json() == {"requires_approval": ["Must be true or false."]}


def test_a_form_boolean_true_is_read(alice):
    from tests.machines.factories import make_lab

    make_lab(alice)
    response = client_for(alice).patch(
        reverse("api-lab-print-settings", args=["fablab"]), {"requires_approval": "true"}, format="multipart"
    )
    assert response.status_code == 200, response.content
    assert response.json()["requires_approval"] is True


def test_an_empty_tag_is_refused(alice):
    payload = {"slug": "bracket", "title": "Bracket", "licence": "CERN-OHL-S-2.0", "tags": ["ok", ""]}
    response = client_for(alice).post(reverse("api-design-list"), payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"tags": {"1": ["This field may not be blank."]}}


@pytest.mark.parametrize("value", [0, 1, "true", "false"])
def test_a_json_boolean_is_a_boolean(alice, value):
    from tests.machines.factories import make_lab

    make_lab(alice)
    response = client_for(alice).patch(
        reverse("api-lab-print-settings", args=["fablab"]), {"requires_approval": value}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json() == {"requires_approval": ["Must be a boolean: true or false."]}


def test_a_json_string_field_refuses_a_number(alice):
    response = client_for(alice).post(reverse("api-tokens"), {"name": 12}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["Must be a string."]}
    assert not AccessToken.objects.filter(name="12").exists()


def test_a_json_integer_field_refuses_a_numeric_string(alice):
    from tests.machines.factories import make_lab

    make_lab(alice)
    response = client_for(alice).patch(
        reverse("api-lab-print-settings", args=["fablab"]), {"max_active_jobs": "3"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"max_active_jobs": ["Must be an integer."]}


def test_a_json_list_of_strings_refuses_an_object_item(alice):
    payload = {"slug": "bracket", "title": "Bracket", "licence": "CERN-OHL-S-2.0", "tags": [{}]}
    response = client_for(alice).post(reverse("api-design-list"), payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"tags": ["Must be a string."]}


def test_a_json_opening_hour_weekday_is_an_integer(alice):
    from tests.machines.factories import make_lab

    make_lab(alice)
    hours = [{"weekday": "0", "opens": "09:00", "closes": "18:00"}]
    response = client_for(alice).put(
        reverse("api-lab-hours", args=["fablab"]), {"hours": hours}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"hours": {"0": {"weekday": ["Must be an integer."]}}}


@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_an_update_with_nothing_in_it_is_refused(alice, fmt):
    from tests.machines.factories import make_lab

    make_lab(alice)
    response = client_for(alice).patch(reverse("api-lab-detail", args=["fablab"]), {}, format=fmt)
    assert response.status_code == 400, response.content
    assert response.json() == {"non_field_errors": ["Nothing to change: give at least one field."]}


def test_a_multipart_body_that_is_no_form_at_all_is_refused(alice):
    from tests.machines.factories import make_lab

    make_lab(alice)
    body = b"--b\r\n5.2e16--b--\r\n"
    response = client_for(alice).generic(
        "PATCH",
        reverse("api-lab-detail", args=["fablab"]),
        body,
        content_type="multipart/form-data; boundary=b",
    )
    assert response.status_code == 400, response.content


def test_the_schema_says_an_update_has_one_field_at_least(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    assert schema["components"]["schemas"]["PatchedLabUpdateInputRequest"]["minProperties"] == 1
