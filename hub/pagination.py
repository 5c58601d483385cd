"""The API's page-number pagination, strict about its two query parameters."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination

from hub.params import positive_int

MAX_PER_PAGE = 100


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "per_page"
    page_size_query_description = f"Results per page, from 1 (more than {MAX_PER_PAGE} gives {MAX_PER_PAGE})."
    page_query_description = "Page number, from 1."
    max_page_size = MAX_PER_PAGE
    # `?page=last` would be a string where the schema promises an integer.
    last_page_strings = ()

    def get_page_size(self, request) -> int:
        default = self.page_size or MAX_PER_PAGE  # PAGE_SIZE is set in the settings
        return min(positive_int(request.query_params, name="per_page", default=default), MAX_PER_PAGE)

    def get_page_number(self, request, paginator) -> int:
        return positive_int(request.query_params, name="page", default=1)

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
