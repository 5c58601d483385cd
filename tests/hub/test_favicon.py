"""The hub has an icon (issue 22, part 7): no page load asks for a missing favicon."""

from __future__ import annotations

from django.contrib.staticfiles import finders
from django.templatetags.static import static


def test_favicon_ico_redirects_to_the_hub_s_svg_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] == static("hub/favicon.svg")


def test_the_icon_is_an_svg_image_the_pages_link(client):
    path = finders.find("hub/favicon.svg")
    assert path is not None
    with open(path, encoding="utf-8") as icon:
        assert icon.read().startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    page = client.get("/login/").content.decode()
    assert f'<link rel="icon" href="{static("hub/favicon.svg")}" type="image/svg+xml">' in page
