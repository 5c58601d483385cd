from __future__ import annotations

from django.core.management.base import BaseCommand

from designs.services.search import search_index_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the search index from every design's row and default branch "
        "(designs/services/search.py): after an upgrade, a restore, or to repair it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--missing", action="store_true", help="Only designs that have no search document yet."
        )

    def handle(self, *args, **options) -> None:
        done = search_index_rebuild(missing_only=options["missing"])
        self.stdout.write(f"Indexed {done} design{'s' if done != 1 else ''} for search.")
