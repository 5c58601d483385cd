"""`manage.py check_starting_bookings`: what Celery beat runs every minute, for set-ups
without beat (the embedded one): run it from cron or a systemd timer."""

from django.core.management.base import BaseCommand

from machines.tasks import check_starting_bookings


class Command(BaseCommand):
    help = "Check the members of bookings that start soon (qualification), cancelling where needed."

    def handle(self, *args, **options) -> None:
        checked = check_starting_bookings()
        self.stdout.write(f"{checked} booking(s) checked.")
