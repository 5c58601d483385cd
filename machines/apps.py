from django.apps import AppConfig


class MachinesConfig(AppConfig):
    name = "machines"
    verbose_name = "Labs and machines"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, and the app registry is not
        # ready while apps.py itself is imported.
        from designs.panels import register_design_panel
        from hub.ticker import register_ticker
        from machines.printing import panels, ticker

        register_ticker("print", interval_setting="FABHUB_PRINT_TICK_S", tick=ticker.embedded_tick)
        register_design_panel(panels.design_prints_panel)
