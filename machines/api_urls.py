from django.urls import path

from machines import api, where_api
from machines.printing import agent_admin_api, spools_api
from machines.printing import api as print_api
from machines.printing import money_api as money

L = "labs/<str:lab>"
M = f"{L}/machines/<str:machine>"

urlpatterns = [
    path("labs/", api.LabListApi.as_view(), name="api-lab-list"),
    path(f"{L}/", api.LabDetailApi.as_view(), name="api-lab-detail"),
    path(f"{L}/hours/", api.LabHoursApi.as_view(), name="api-lab-hours"),
    path(f"{L}/closures/", api.ClosureListApi.as_view(), name="api-lab-closures"),
    path(f"{L}/closures/<int:closure_id>/", api.ClosureDetailApi.as_view(), name="api-lab-closure"),
    path(f"{L}/members/", api.MemberListApi.as_view(), name="api-lab-members"),
    path(f"{L}/members/<str:username>/", api.MemberDetailApi.as_view(), name="api-lab-member"),
    path(f"{L}/machines/", api.MachineListApi.as_view(), name="api-machine-list"),
    path(f"{L}/availability/", api.KindAvailabilityApi.as_view(), name="api-lab-availability"),
    path(f"{L}/first-free-slot/", api.FirstFreeSlotApi.as_view(), name="api-lab-first-free-slot"),
    path(f"{L}/bookings/", api.LabBookingListApi.as_view(), name="api-lab-bookings"),
    path(f"{L}/qualifications/", api.QualificationListApi.as_view(), name="api-lab-qualifications"),
    path(
        f"{L}/qualifications/<int:qualification_id>/",
        api.QualificationDetailApi.as_view(),
        name="api-lab-qualification",
    ),
    path(f"{L}/feed/", api.FeedApi.as_view(scope="lab"), name="api-lab-feed"),
    path(f"{M}/", api.MachineDetailApi.as_view(), name="api-machine-detail"),
    path(f"{M}/status/", api.MachineStatusApi.as_view(), name="api-machine-status"),
    path(f"{M}/maintenance/", api.MaintenanceApi.as_view(), name="api-machine-maintenance"),
    path(f"{M}/availability/", api.MachineAvailabilityApi.as_view(), name="api-machine-availability"),
    path(f"{M}/feed/", api.FeedApi.as_view(scope="machine"), name="api-machine-feed"),
    path("bookings/", api.BookingListApi.as_view(), name="api-booking-list"),
    path("bookings/<int:booking_id>/", api.BookingDetailApi.as_view(), name="api-booking-detail"),
    *[
        path(
            f"bookings/<int:booking_id>/{action}/",
            api.BookingActionApi.as_view(action=action),
            name=f"api-booking-{action}",
        )
        for action in ("cancel", "approve", "refuse", "keep")
    ],
    path("me/feed/", api.FeedApi.as_view(scope="member"), name="api-my-feed"),
    # The print queue (machines/printing/api.py).
    path(f"{L}/print-settings/", print_api.PrintSettingsApi.as_view(), name="api-lab-print-settings"),
    # Prices, credits and the monthly report (machines/printing/money_api.py).
    path(f"{L}/material-prices/", money.MaterialPriceListApi.as_view(), name="api-lab-material-prices"),
    path(
        f"{L}/material-prices/<str:material>/",
        money.MaterialPriceDetailApi.as_view(),
        name="api-lab-material-price",
    ),
    path(f"{L}/credits/", money.CreditAccountListApi.as_view(), name="api-lab-credits"),
    path(f"{L}/credits/<str:username>/", money.CreditLedgerApi.as_view(), name="api-lab-credit"),
    path(
        f"{L}/credits/<str:username>/top-ups/",
        money.CreditTopUpApi.as_view(),
        name="api-lab-credit-top-up",
    ),
    path(f"{L}/reports/<str:month>.csv", money.LabReportApi.as_view(), name="api-lab-report"),
    path(f"{L}/printers/", print_api.PrinterListApi.as_view(), name="api-lab-printers"),
    path(f"{L}/print-jobs/", print_api.LabPrintJobListApi.as_view(), name="api-lab-print-jobs"),
    path(f"{M}/printer/", print_api.PrinterDetailApi.as_view(), name="api-machine-printer"),
    path(f"{M}/printer/cleared/", print_api.PrinterClearedApi.as_view(), name="api-machine-printer-cleared"),
    # Spools (machines/printing/spools_api.py).
    path(f"{L}/spools/", spools_api.SpoolListApi.as_view(), name="api-lab-spools"),
    path(f"{L}/spools/<int:spool_id>/", spools_api.SpoolDetailApi.as_view(), name="api-lab-spool"),
    path(f"{L}/spools/<int:spool_id>/load/", spools_api.SpoolLoadApi.as_view(), name="api-lab-spool-load"),
    path(
        f"{L}/spools/<int:spool_id>/unload/", spools_api.SpoolUnloadApi.as_view(), name="api-lab-spool-unload"
    ),
    path(
        f"{L}/spools/<int:spool_id>/archive/",
        spools_api.SpoolArchiveApi.as_view(),
        name="api-lab-spool-archive",
    ),
    # Managing a lab's agents (machines/printing/agent_admin_api.py): managers only.
    path(f"{L}/agents/", agent_admin_api.LabAgentListApi.as_view(), name="api-lab-agents"),
    path(f"{L}/agents/<int:agent_id>/", agent_admin_api.LabAgentDetailApi.as_view(), name="api-lab-agent"),
    path(f"{M}/agent/", agent_admin_api.MachineAgentApi.as_view(), name="api-machine-agent"),
    path("print-jobs/", print_api.PrintJobListApi.as_view(), name="api-print-jobs"),
    path("print-jobs/<int:job_id>/", print_api.PrintJobDetailApi.as_view(), name="api-print-job"),
    path("print-jobs/<int:job_id>/gcode/", print_api.PrintJobGcodeApi.as_view(), name="api-print-job-gcode"),
    *[
        path(
            f"print-jobs/<int:job_id>/{action}/",
            print_api.PrintJobActionApi.as_view(action=action),
            name=f"api-print-job-{action}",
        )
        for action in ("approve", "refuse", "cancel", "pause", "resume", "started", "finished", "failed")
    ],
    path("print-records/", print_api.PrintRecordListApi.as_view(), name="api-print-records"),
    path("print-records/by-commit/", print_api.DesignPrintsApi.as_view(), name="api-print-records-by-commit"),
    # Where can I make this (machines/where_api.py).
    path("where/", where_api.WhereApi.as_view(), name="api-where"),
]
