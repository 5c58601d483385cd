"""manage.py issue_credentials: sign the records of events from before the hub signed them
(qualifications and prints recorded earlier, makes); idempotent."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from hub.records import credentials_backfill


class Command(BaseCommand):
    help = "Issue signed records for qualifications, prints and makes that have none yet."

    def handle(self, *args, **options):
        self.stdout.write(f"Issued {credentials_backfill()} signed records.")
