"""The lab agent protocol (machines/printing/agent_api.py): agents only, under /api/agent/v1/.

Kept out of the REST API's routes and its OpenAPI schema: one caller, a bearer token of
its own, and a protocol documented with its sequence rules in docs/agent.md.
"""

from django.urls import path

from machines.printing import agent_api

urlpatterns = [
    path("sync", agent_api.sync, name="agent-sync"),
    path("commands/<uuid:command_id>/gcode", agent_api.command_gcode, name="agent-command-gcode"),
]
