from django.apps import AppConfig


class MachinesConfig(AppConfig):
    name = "machines"
    verbose_name = "Labs and machines"

    def ready(self) -> None:
        from hub.ticker import register_ticker
        from machines import ticker

        register_ticker("print", interval_setting="FABHUB_PRINT_TICK_S", tick=ticker.embedded_tick)
