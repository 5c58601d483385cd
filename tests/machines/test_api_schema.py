"""Every labs endpoint is described in the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.urls import get_resolver, reverse

pytestmark = pytest.mark.django_db


def test_the_schema_lists_every_labs_endpoint(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    documented = set(schema["paths"])
    from machines import api_urls

    assert len(api_urls.urlpatterns) >= 30  # the labs, bookings and print-queue routes
    for pattern in api_urls.urlpatterns:
        route = "/api/" + str(pattern.pattern).replace("<str:", "{").replace("<int:", "{").replace(">", "}")
        assert route in documented, route
    assert any(name == "api-booking-cancel" for name in get_resolver().reverse_dict if isinstance(name, str))


def test_the_booking_input_documents_aware_times(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    booking = schema["components"]["schemas"]["BookingCreateInputRequest"]
    assert set(booking["required"]) == {"machine", "start", "end"}
