"""Admin: for looking, and for fixing data by hand. Timeline rows are read-only here: every
change to a booking goes through machines.services, which locks the machine's timeline."""

from django.contrib import admin

from machines import services
from machines.models import (
    Booking,
    Closure,
    Lab,
    LabMembership,
    Machine,
    OpeningHours,
    Printer,
    PrintJob,
    PrintRecord,
    Qualification,
)


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "join_policy", "approved_at"]
    list_filter = [("approved_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug"]
    inlines = [OpeningHoursInline]
    actions = ["approve"]

    @admin.action(description="Approve the selected labs")
    def approve(self, request, queryset):
        for lab in queryset.filter(approved_at__isnull=True):
            services.lab_approve(lab=lab, actor=request.user)
        self.message_user(request, "Approved; their managers are told.")


@admin.register(LabMembership)
class LabMembershipAdmin(admin.ModelAdmin):
    list_display = ["lab", "user", "role", "status"]
    list_filter = ["role", "status"]


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["name", "lab", "kind", "status", "requires_qualification"]
    list_filter = ["kind", "status"]
    # connection_secret is not editable, so no admin form shows it.
    exclude = ["photo"]


@admin.register(Closure)
class ClosureAdmin(admin.ModelAdmin):
    list_display = ["lab", "start", "end", "reason"]


@admin.register(Qualification)
class QualificationAdmin(admin.ModelAdmin):
    list_display = ["member", "lab", "machine", "kind", "trained_on", "expires_on"]


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ["machine", "kind", "status", "member", "start", "end", "needs_decision"]
    list_filter = ["kind", "status", "needs_decision"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# The print queue: read-only here. Its states move only through machines/printing/
# (jobs.py and the claims of services.py and dispatch.py); an admin edit would bypass them.
class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PrintJob)
class PrintJobAdmin(_ReadOnly):
    list_display = ["pk", "lab", "owner", "path", "status", "machine", "priority", "submitted_at"]
    list_filter = ["status", "file_kind"]


@admin.register(Printer)
class PrinterAdmin(_ReadOnly):
    list_display = ["machine", "state", "material", "colour", "nozzle_mm", "bed_clear", "seen_at"]


@admin.register(PrintRecord)
class PrintRecordAdmin(_ReadOnly):
    list_display = ["job", "design_name", "commit_sha", "machine_name", "owner_name", "result", "ended_at"]
    list_filter = ["result"]
