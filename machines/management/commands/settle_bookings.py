"""`manage.py settle_bookings`: charge the holds of priced bookings that ended and give back
those of bookings that were cancelled; run it every few minutes from cron (or beat)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from machines.services.bookings import bookings_settle


class Command(BaseCommand):
    help = "Settle the credit held by machine bookings that ended or were cancelled."

    def handle(self, *args, **options) -> None:
        settled = bookings_settle()
        self.stdout.write(f"{settled} booking(s) settled.")
