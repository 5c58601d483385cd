from django.apps import AppConfig


class DesignsConfig(AppConfig):
    name = "designs"
    verbose_name = "Designs"

    def ready(self) -> None:
        from designs import analysis, diffs

        diffs.register_differ(analysis.mesh_differ)
