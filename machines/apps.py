from django.apps import AppConfig


class MachinesConfig(AppConfig):
    name = "machines"
    verbose_name = "Labs and machines"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, and the app registry is not
        # ready while apps.py itself is imported.
        from designs.panels import register_design_panel
        from hub.accounts import register_account_deletion_step
        from hub.auth import register_agent_resolver
        from hub.markdown import register_markdown_field
        from hub.notifications import register_notification_target
        from hub.profiles import register_profile_panel
        from hub.ticker import register_ticker
        from machines import archives, notifications, profile_panels, records
        from machines.models import Lab
        from machines.printing import agents, panels, ticker
        from machines.printing import services as printing
        from machines.services import labs

        register_ticker("print", interval_setting="FABHUB_PRINT_TICK_S", tick=ticker.embedded_tick)
        register_design_panel(panels.design_prints_panel)
        register_profile_panel(profile_panels.machines_profile_panel)
        register_account_deletion_step("lab memberships", labs.memberships_of_leaving_account)
        register_markdown_field(Lab, "description")
        register_account_deletion_step("print jobs", printing.print_jobs_of_leaving_account)
        register_agent_resolver(agents.agent_for_token)
        records.register()
        archives.register()
        # A lab notice stays its recipient's (their booking, their lab's news), as before.
        register_notification_target(notifications.BOOKING_TARGET, visible_ids=None)
        register_notification_target(notifications.LAB_TARGET, visible_ids=None)
