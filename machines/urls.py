"""Pages of labs and machines, under /labs/. Included by hub.urls before designs.urls."""

from django.urls import path
from django.views.generic import RedirectView

from machines import views, where_views
from machines.printing import money_views, spool_views
from machines.printing import views as print_views

L = "labs/<str:lab>"
M = f"{L}/machines/<str:machine>"

urlpatterns = [
    path("labs/", views.lab_list, name="lab-list"),
    path("labs/new/", views.lab_new, name="lab-new"),
    path("labs/bookings/", views.my_bookings, name="my-bookings"),
    # The inbox moved to the hub (hub.notifications): old links and bookmarks follow it.
    path("labs/notifications/", RedirectView.as_view(pattern_name="notifications", permanent=True)),
    path("labs/feeds/<str:token>.ics", views.calendar_feed, name="calendar-feed"),
    path("labs/feeds/<str:token>/reset/", views.feed_reset, name="calendar-feed-reset"),
    # The print queue (machines/printing/views.py); "jobs" is a reserved lab slug.
    path("labs/jobs/", print_views.my_print_jobs, name="my-print-jobs"),
    path("labs/jobs/new/", print_views.print_job_new, name="print-job-new"),
    # Where can I make this (machines/where_views.py); "where" is taken before lab slugs.
    path("labs/where/", where_views.where_page, name="where"),
    path("labs/jobs/<int:job_id>/", print_views.print_job_detail, name="print-job"),
    path("labs/jobs/<int:job_id>/<str:action>/", print_views.print_job_action, name="print-job-action"),
    path(f"{L}/queue/", print_views.print_queue, name="print-queue"),
    path(f"{L}/queue/settings/", print_views.print_settings, name="print-settings"),
    path(f"{L}/queue/settings/prices/", money_views.material_prices, name="print-material-prices"),
    path(f"{L}/queue/report.csv", money_views.lab_report, name="lab-report"),
    path(f"{L}/credits/", money_views.lab_credits, name="lab-credits"),
    path(f"{L}/spools/", spool_views.lab_spools, name="lab-spools"),
    path(f"{M}/printer/", print_views.printer_edit, name="printer-edit"),
    path(f"{M}/printer/cleared/", print_views.printer_cleared, name="printer-cleared"),
    path(f"{L}/", views.lab_detail, name="lab-detail"),
    path(f"{L}/join/", views.lab_join, name="lab-join"),
    path(f"{L}/manage/", views.lab_manage, name="lab-manage"),
    path(f"{L}/manage/agents/", print_views.lab_agents, name="lab-agents"),
    path(f"{L}/manage/approvals/", views.lab_approvals, name="lab-approvals"),
    path(f"{L}/manage/qualifications/", views.lab_qualifications, name="lab-qualifications"),
    path(f"{L}/manage/maintenance/", views.lab_maintenance, name="lab-maintenance"),
    path(f"{L}/machines/new/", views.machine_new, name="machine-new"),
    path(f"{M}/", views.machine_detail, name="machine-detail"),
    path(f"{M}/edit/", views.machine_edit, name="machine-edit"),
    path(f"{M}/photo/", views.machine_photo, name="machine-photo"),
]
