from django.apps import AppConfig


class DesignsConfig(AppConfig):
    name = "designs"
    verbose_name = "Designs"

    def ready(self) -> None:
        # Imported here: these modules load models, which the app registry allows only now.
        from designs import diffs, profile_panels, selectors
        from designs.models import ChangeProposal, ProposalComment
        from designs.services import archives, designs, diff_pages, makes, mirrors, proposals
        from hub import records
        from hub.accounts import register_account_deletion_step
        from hub.archives import ArchivePart, register_archive_part
        from hub.markdown import register_markdown_field
        from hub.notifications import register_notification_target
        from hub.profiles import register_profile_panel
        from hub.ticker import register_ticker

        # A notification about a design shows only while its reader may see the design.
        register_notification_target(selectors.DESIGN_TARGET, visible_ids=selectors.design_ids_visible_to)
        diffs.register_prepared_differ(diff_pages.mesh_differ_prepare)
        register_account_deletion_step("designs", designs.designs_of_leaving_account)
        register_markdown_field(ChangeProposal, "description", proposals.proposal_markdown)
        register_markdown_field(ProposalComment, "body", proposals.proposal_markdown)
        register_ticker("mirror", interval_setting="FABHUB_MIRROR_TICK_S", tick=mirrors.embedded_tick)
        records.register_credential_source(
            records.CredentialSource(
                selectors.MAKE_SOURCE,
                can_view=selectors.make_credential_visible,
                backfill=makes.makes_backfill,
            )
        )
        register_profile_panel(profile_panels.designs_profile_panel)
        register_archive_part(
            ArchivePart("designs", export=archives.designs_export, import_=archives.designs_import)
        )
