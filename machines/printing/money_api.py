"""The REST API of a lab's prices, members' credits and monthly report: validate input →
call one service or selector → describe output (docs/labs.md, docs/api.md)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.auth import signed_in_user
from hub.exceptions import NotFound, PermissionDenied
from hub.models import User
from hub.permissions import AUTHENTICATED
from hub.schema import errors
from machines import credits
from machines.accounting import lab_currency
from machines.api import LabContextMixin
from machines.models import CreditAccount
from machines.printing import prices, reports
from machines.printing.money_serializers import (
    CreditAccountOutput,
    CreditEntryOutput,
    CreditLedgerOutput,
    MaterialPriceCreateInput,
    MaterialPriceInput,
    TopUpInput,
)
from machines.printing.serializers import MaterialPriceOutput
from machines.selectors import lab_role

LEDGER_ROWS = 200


class MaterialPriceListApi(LabContextMixin, APIView):
    @extend_schema(
        responses=MaterialPriceOutput(many=True), description="The lab's price per gram of each material."
    )
    def get(self, request: Request, lab: str) -> Response:
        return Response(MaterialPriceOutput(prices.material_prices_of(self.get_lab()), many=True).data)

    @extend_schema(request=MaterialPriceCreateInput, responses={201: MaterialPriceOutput, **errors(403)})
    def post(self, request: Request, lab: str) -> Response:
        """Price a material (or change its price): managers."""
        data = MaterialPriceCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = prices.material_price_set(
            lab=self.get_lab(), actor=signed_in_user(request), **data.validated_data
        )
        return Response(MaterialPriceOutput(row).data, status=201)


class MaterialPriceDetailApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=MaterialPriceInput, responses={200: MaterialPriceOutput, **errors(403)})
    def put(self, request: Request, lab: str, material: str) -> Response:
        data = MaterialPriceInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = prices.material_price_set(
            lab=self.get_lab(), actor=signed_in_user(request), material=material, **data.validated_data
        )
        return Response(MaterialPriceOutput(row).data)

    @extend_schema(responses={204: None, **errors(403, 404)})
    def delete(self, request: Request, lab: str, material: str) -> Response:
        prices.material_price_delete(lab=self.get_lab(), actor=signed_in_user(request), material=material)
        return Response(status=204)


class CreditAccountListApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses=CreditAccountOutput(many=True),
        description="Managers: every member's balance at the lab. Members: their own.",
    )
    def get(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        the_lab = self.get_lab()
        role = lab_role(the_lab, user)
        if role == "manager":
            rows = list(credits.credit_accounts_of_lab(the_lab))
        elif role == "member":
            rows = [a for a in [credits.credit_account(lab=the_lab, user=user)] if a is not None]
        else:
            raise NotFound(f"You have no credit at {the_lab.name}.")
        context = {"currency": lab_currency(the_lab)}
        return Response(CreditAccountOutput(rows, many=True, context=context).data)


def _person(the_lab, username: str, actor: User) -> User:
    person = User.objects.filter(username=username).first()
    if person is None:
        raise NotFound(f"No member {username}.")
    try:
        credits.require_own_or_manager(lab=the_lab, user=person, actor=actor)
    except PermissionDenied:
        raise NotFound(f"No credit account of {username} at {the_lab.name}.") from None
    return person


class CreditLedgerApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={200: CreditLedgerOutput, **errors(404)},
        description=f"A member's balance and their last {LEDGER_ROWS} movements, newest first "
        "(the member and managers).",
    )
    def get(self, request: Request, lab: str, username: str) -> Response:
        the_lab = self.get_lab()
        person = _person(the_lab, username, signed_in_user(request))
        account = credits.credit_account(lab=the_lab, user=person) or CreditAccount(lab=the_lab, user=person)
        context = {"currency": lab_currency(the_lab)}
        entries = credits.credit_entries(lab=the_lab, user=person)[:LEDGER_ROWS]
        return Response(
            {
                "account": CreditAccountOutput(account, context=context).data,
                "entries": CreditEntryOutput(entries, many=True).data,
            }
        )


class CreditTopUpApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=TopUpInput, responses={201: CreditEntryOutput, **errors(403, 404)})
    def post(self, request: Request, lab: str, username: str) -> Response:
        """Record money a member paid in (managers)."""
        the_lab = self.get_lab()
        actor = signed_in_user(request)
        person = _person(the_lab, username, actor)
        data = TopUpInput(data=request.data)
        data.is_valid(raise_exception=True)
        entry = credits.credit_top_up(lab=the_lab, user=person, actor=actor, **data.validated_data)
        return Response(CreditEntryOutput(entry).data, status=201)


class LabReportApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR), **errors(403, 404)},
        description="The month's prints and credit movements as CSV (managers); month is YYYY-MM.",
    )
    def get(self, request: Request, lab: str, month: str) -> HttpResponse:
        the_lab = self.get_lab()
        text = reports.lab_month_report(lab=the_lab, month=month, actor=signed_in_user(request))
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{the_lab.slug}-{month}.csv"'
        return response
