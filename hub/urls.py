from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from hub import api

api_urlpatterns: list[URLPattern | URLResolver] = [
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("tokens/", api.TokenListApi.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/", api.TokenDetailApi.as_view(), name="api-token"),
    path("", include("designs.api_urls")),
    path("", include("machines.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("", include("hub.page_urls")),
    path("", include("machines.urls")),
    path("", include("designs.git_urls")),
    # Last: /<owner>/<design>/… catches what nothing above matched.
    path("", include("designs.urls")),
]

handler404 = "hub.views.page_not_found"
