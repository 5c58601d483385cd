from django.apps import AppConfig


class DesignsConfig(AppConfig):
    name = "designs"
    verbose_name = "Designs"

    def ready(self) -> None:
        from designs import analysis, diffs, mirrors
        from hub.ticker import register_ticker

        diffs.register_differ(analysis.mesh_differ)
        register_ticker("mirror", interval_setting="FABHUB_MIRROR_TICK_S", tick=mirrors.embedded_tick)
