"""Admin: for looking, and for fixing data by hand. Timeline rows are read-only here: every
change to a booking goes through machines.services, which locks the machine's timeline."""

from django.contrib import admin

from machines.models import (
    Booking,
    Closure,
    Lab,
    LabMembership,
    Machine,
    Notification,
    OpeningHours,
    Qualification,
)


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "join_policy"]
    search_fields = ["name", "slug"]
    inlines = [OpeningHoursInline]


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


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["user", "subject", "created_at", "read_at"]
