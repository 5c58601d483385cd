"""Full-text search over designs (docs/architecture.md, "Search"): the hub's tokeniser
(tokens), the SQLite and PostgreSQL back-ends (backends) and the search a page or the API
runs for a person (results). The index itself is written by designs/services/search.py."""

from __future__ import annotations

from designs.search.results import DesignSearch, design_search

__all__ = ["DesignSearch", "design_search"]
