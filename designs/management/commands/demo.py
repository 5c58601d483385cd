from __future__ import annotations

from django.core.management.base import BaseCommand

from designs import demo


class Command(BaseCommand):
    help = "Create demo people and designs (idempotent: does nothing if they already exist)."
    # The usual run finds the data already there and should return at once; the system
    # checks import every URL module and the API behind them. `manage.py check` runs in CI.
    requires_system_checks: list[str] = []

    def handle(self, *args, **options) -> None:
        if not demo.demo_create():
            self.stdout.write(
                f"Demo data already present ({demo.ADA.username}/{demo.CAR_SLUG}); nothing to do."
            )
            return
        self.stdout.write(self.style.SUCCESS("Created the demo data. Sign in as:"))
        for account in demo.ACCOUNTS:
            self.stdout.write(f"  {account.username} / {account.password}  ({account.role})")
