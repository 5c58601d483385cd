"""manage.py rotate_signing_key: sign new records with a new key. The old key is retired
from signing but stays published, so every record it signed still verifies."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from hub.signing import signing_key_rotate


class Command(BaseCommand):
    help = "Make a new signing key for records; earlier keys stay published."

    def handle(self, *args, **options):
        key = signing_key_rotate()
        self.stdout.write(f"Records are now signed with {key.key_id}.")
