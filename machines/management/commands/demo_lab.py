"""`manage.py demo_lab`: the demo lab and its printer (see machines/demo.py); `make run`
calls it with the address and key of the OctoPrint it started."""

from django.core.management.base import BaseCommand

from machines import demo


class Command(BaseCommand):
    help = "Create the demo lab (idempotent) and point its printer at an OctoPrint."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--octoprint-url", default="", help="e.g. http://127.0.0.1:5050")
        parser.add_argument("--octoprint-key", default="", help="An application key of that OctoPrint.")

    def handle(self, *args, **options) -> None:
        lab = demo.demo_lab_create(
            octoprint_url=options["octoprint_url"] or None, octoprint_key=options["octoprint_key"] or None
        )
        if lab is None:
            self.stdout.write("No demo people yet: run `manage.py demo` first.")
            return
        self.stdout.write(
            f"Demo lab: /labs/{lab.slug}/queue/ (members: {', '.join(demo.demo_lab_members())})"
        )
