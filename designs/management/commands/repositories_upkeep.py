from __future__ import annotations

from django.core.management.base import BaseCommand

from designs.services.refs import repositories_upkeep


class Command(BaseCommand):
    help = (
        "Roll up the packs and loose objects of every design repository that has piled "
        "them up (designs/services/refs.py). Ref moves queue it by themselves; this is "
        "for repositories that piled up before, or a restore."
    )

    def handle(self, *args, **options) -> None:
        done = repositories_upkeep()
        self.stdout.write(f"Rolled up {done} repositor{'ies' if done != 1 else 'y'}.")
