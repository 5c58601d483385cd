from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from designs import demo


class Command(BaseCommand):
    help = "Create demo people and designs (idempotent: does nothing if they already exist)."
    # The usual run finds the data already there and should return at once; the system
    # checks import every URL module and the API behind them. `manage.py check` runs in CI.
    requires_system_checks: list[str] = []

    def handle(self, *args, **options) -> None:
        created = demo.demo_create()
        # Search finds the demo designs by their READMEs and file names at once, and a data
        # folder from before the search index gets one (designs/services/search.py).
        call_command("reindex_search", missing=True, stdout=self.stdout)
        if not created:
            self.stdout.write(
                f"Demo data already present ({demo.ADA.username}/{demo.CAR_SLUG}); nothing to do."
            )
            return
        self.stdout.write(self.style.SUCCESS("Created the demo data. Sign in as:"))
        for account in demo.ACCOUNTS:
            self.stdout.write(f"  {account.username} / {account.password}  ({account.role})")
