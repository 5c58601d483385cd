"""Render again the stored HTML of Markdown fields made by an older renderer version."""

from django.core.management.base import BaseCommand

from hub.markdown import RENDERER_VERSION, rerender_stale


class Command(BaseCommand):
    help = "Render Markdown fields whose stored HTML an older renderer made (run after migrate)."

    def handle(self, *args, **options) -> None:
        count = rerender_stale()
        self.stdout.write(f"{count} Markdown field(s) rendered again with {RENDERER_VERSION}.")
