"""Managing a lab's agents over the REST API: list, create (the token is in that answer
only), revoke, and which agent drives a machine. Managers of the lab only.

Not the agents' own protocol: that is `agent_api` (docs/agent.md), which agents call
with their token.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.auth import signed_in_user
from hub.permissions import AUTHENTICATED
from hub.schema import errors
from machines.api import LabContextMixin
from machines.models import Machine
from machines.printing import agents
from machines.printing.serializers import (
    LabAgentCreatedOutput,
    LabAgentInput,
    LabAgentOutput,
    MachineAgentInput,
    MachineAgentOutput,
)
from machines.selectors import agent_of_lab, agents_of_lab


class LabAgentListApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={200: LabAgentOutput(many=True), **errors(403)},
        description="The lab's agents, revoked ones included, with the printers each drives.",
    )
    def get(self, request: Request, lab: str) -> Response:
        rows = agents_of_lab(self.get_lab(), actor=signed_in_user(request))
        return Response(LabAgentOutput(rows, many=True).data)

    @extend_schema(
        request=LabAgentInput,
        responses={201: LabAgentCreatedOutput},
        description="A new agent. Its `token` is in this answer only: the hub keeps a digest of it.",
    )
    def post(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        data = LabAgentInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent, token = agents.agent_create(lab=self.get_lab(), actor=user, name=data.validated_data["name"])
        response = Response(LabAgentCreatedOutput(agent, context={"token": token}).data, status=201)
        response["Cache-Control"] = "no-store"
        return response


class LabAgentDetailApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={204: None},
        description="Revoke the agent: its token is refused from now on (revoking twice changes nothing).",
    )
    def delete(self, request: Request, lab: str, agent_id: int) -> Response:
        user = signed_in_user(request)
        agent = agent_of_lab(self.get_lab(), actor=user, agent_id=agent_id)
        agents.agent_revoke(agent=agent, actor=user)
        return Response(status=204)


class MachineAgentApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        request=MachineAgentInput,
        responses={200: MachineAgentOutput, **errors(409)},
        description="Drive the machine through one of the lab's active agents (the hub then forgets "
        "its connection URL and key), or with null directly by the hub. 409 while it holds a print job.",
    )
    def put(self, request: Request, lab: str, machine: str) -> Response:
        user = signed_in_user(request)
        data = MachineAgentInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent_id = data.validated_data["agent"]
        # The lookup checks the requester manages the lab, so a stranger learns nothing of its agents.
        agent = None if agent_id is None else agent_of_lab(self.get_lab(), actor=user, agent_id=agent_id)
        the_machine: Machine = agents.machine_set_agent(machine=self.get_machine(), actor=user, agent=agent)
        return Response(MachineAgentOutput(the_machine).data)
