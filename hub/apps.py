from django.apps import AppConfig


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Hub"

    def ready(self) -> None:
        from hub import archives, checks, schema  # noqa: F401  (checks, schema: register themselves)
        from hub.archive_views import brought_profile_panel
        from hub.profiles import register_profile_panel
        from hub.ticker import register_ticker

        def archives_tick(_round: int) -> None:
            archives.archives_expire()

        register_ticker("archives", interval_setting="FABHUB_ARCHIVE_TICK_S", tick=archives_tick)
        register_profile_panel(brought_profile_panel)
