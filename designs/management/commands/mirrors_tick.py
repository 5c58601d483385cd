"""`manage.py mirrors_tick`: what Celery beat runs every minute, for set-ups without beat
(the embedded one): refresh the pull mirrors that are due and retry failed push mirrors.
Run it from cron or a systemd timer; it works here, in this process."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from designs.services import mirrors


class Command(BaseCommand):
    help = "Refresh the pull mirrors that are due and retry the push mirrors whose back-off is over."

    def handle(self, *args, **options) -> None:
        pulls, pushes = mirrors.mirrors_tick(inline=True)
        self.stdout.write(f"Refreshed {pulls} pull mirror(s), pushed {pushes} push mirror(s).")
