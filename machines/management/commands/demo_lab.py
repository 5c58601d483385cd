"""`manage.py demo_lab`: the demo lab and its printer (see machines/demo.py); `make run`
calls it with the address and key of the OctoPrint it started."""

from pathlib import Path

from django.core.management.base import BaseCommand

from machines import demo


class Command(BaseCommand):
    help = "Create the demo lab (idempotent) and point its printer at an OctoPrint."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--octoprint-url", default="", help="e.g. http://127.0.0.1:5050")
        parser.add_argument("--octoprint-key", default="", help="An application key of that OctoPrint.")
        parser.add_argument(
            "--agent-config",
            default="",
            help="Drive the printer through a lab agent: write its configuration (token included) here.",
        )
        parser.add_argument(
            "--hub-url", default="http://127.0.0.1:8000", help="Where the agent finds the hub."
        )
        parser.add_argument("--agent-state", default="", help="The agent's state directory.")
        parser.add_argument(
            "--moonraker-url", default="", help="A Moonraker for a Klipper printer driven by the agent."
        )

    def handle(self, *args, **options) -> None:
        via_agent = bool(options["agent_config"])
        url, key = options["octoprint_url"] or None, options["octoprint_key"] or None
        # Through an agent, the hub never learns the OctoPrint address or key.
        lab = demo.demo_lab_create(
            octoprint_url=None if via_agent else url, octoprint_key=None if via_agent else key
        )
        if lab is None:
            self.stdout.write("No demo people yet: run `manage.py demo` first.")
            return
        if via_agent and url and key:
            config = demo.demo_lab_agent_config(
                hub_url=options["hub_url"],
                octoprint_url=url,
                octoprint_key=key,
                state_dir=options["agent_state"] or str(Path(options["agent_config"]).parent / "demo-agent"),
                moonraker_url=options["moonraker_url"] or None,
            )
            if config is not None:
                path = Path(options["agent_config"])
                path.touch(mode=0o600)
                path.chmod(0o600)  # it holds the agent's token and the printer's key
                path.write_text(config)
                self.stdout.write(f"Demo lab agent configuration: {path}")
        self.stdout.write(
            f"Demo lab: /labs/{lab.slug}/queue/ (members: {', '.join(demo.demo_lab_members())})"
        )
