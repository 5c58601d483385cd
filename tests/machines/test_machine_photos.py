"""Machine photos: images only, served with headers that keep them inert."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def test_a_manager_uploads_a_photo_and_anyone_sees_it(lab, alice, printer, client):
    response = client_for(alice).patch(
        reverse("api-machine-detail", args=["fablab", "prusa"]),
        {"photo": SimpleUploadedFile("prusa.png", PNG, content_type="image/png")},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    assert response.json()["photo_url"].endswith("/labs/fablab/machines/prusa/photo/")
    photo = client.get(reverse("machine-photo", args=["fablab", "prusa"]))
    assert photo.status_code == 200 and b"".join(photo.streaming_content) == PNG
    assert photo["X-Content-Type-Options"] == "nosniff"


def test_a_file_that_is_not_an_image_is_refused(lab, alice, printer):
    response = client_for(alice).patch(
        reverse("api-machine-detail", args=["fablab", "prusa"]),
        {"photo": SimpleUploadedFile("x.png", b"<html><script>alert(1)</script>", content_type="image/png")},
        format="multipart",
    )
    assert response.status_code == 400 and "PNG, JPEG, GIF or WebP" in response.json()["detail"]
