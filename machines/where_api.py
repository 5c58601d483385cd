"""GET /api/where/: the labs that can make a part, with estimated start, finish and cost.

Thin: the query parameters are read strictly (a bad one is a 400 naming it), the part
and the place resolved and the answer computed by machines.where, then described."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.auth import viewer
from hub.exceptions import ValidationError
from hub.params import choice, positive_int
from hub.schema import errors
from machines import where


class _Named(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class WherePartOutput(serializers.Serializer):
    design = serializers.CharField(source="design_name", help_text="owner/slug; empty for a size given.")
    path = serializers.CharField()
    rev = serializers.CharField()
    commit = serializers.CharField(source="commit_sha")
    size_mm = serializers.ListField(child=serializers.FloatField(), help_text="The oriented box's extents.")
    volume_mm3 = serializers.FloatField(allow_null=True)


class WherePlaceOutput(serializers.Serializer):
    name = serializers.CharField()
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()


class WhereEstimateOutput(serializers.Serializer):
    is_estimate = serializers.SerializerMethodField(
        help_text="Always true: the queue and timeline may change."
    )
    start = serializers.DateTimeField(allow_null=True, help_text="Empty: not within 60 days.")
    finish = serializers.DateTimeField(allow_null=True)
    jobs_ahead = serializers.IntegerField(help_text="Queued jobs the estimate starts before this one.")
    seconds_per_copy = serializers.IntegerField(source="seconds", allow_null=True)
    time_source = serializers.CharField(help_text="slicer (this file was sliced for the printer) or volume.")

    def get_is_estimate(self, option: where.Option) -> bool:
        return True


class WhereCostOutput(serializers.Serializer):
    amount = serializers.DecimalField(source="cost", max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    grams_per_copy = serializers.DecimalField(
        source="grams", max_digits=12, decimal_places=1, allow_null=True
    )


class WhereOptionOutput(serializers.Serializer):
    lab = _Named()
    machine = _Named(help_text="The printer the estimate puts the part on.")
    machines = _Named(many=True, help_text="Every printer of the lab that fits the part and can print it.")
    needs = serializers.ListField(child=serializers.CharField(), help_text="What a person must do first.")
    role = serializers.CharField(allow_null=True, help_text="member, manager, pending or empty.")
    join_policy = serializers.CharField()
    qualified = serializers.BooleanField()
    training = serializers.CharField(help_text="The qualification needed, when not qualified.")
    estimate = WhereEstimateOutput(source="*")
    cost = WhereCostOutput(source="*", help_text="Estimated, in the lab's currency, for all copies.")
    distance_km = serializers.FloatField(allow_null=True)


class WhereTooBigOutput(serializers.Serializer):
    lab = _Named()
    machine = _Named()
    build_volume_mm = serializers.ListField(source="volume", child=serializers.FloatField())
    shrink_percent = serializers.FloatField(help_text="How much smaller the part must be to fit it.")


class WhereOutput(serializers.Serializer):
    part = WherePartOutput()
    material = serializers.CharField()
    colour = serializers.CharField()
    nozzle_mm = serializers.DecimalField(max_digits=4, decimal_places=2, allow_null=True)
    copies = serializers.IntegerField()
    sort = serializers.CharField()
    place = WherePlaceOutput(allow_null=True)
    currency = serializers.CharField(allow_null=True, help_text="The currency sorted by (sort=cheapest).")
    options = WhereOptionOutput(many=True)
    other_currencies = WhereOptionOutput(
        many=True, help_text="sort=cheapest: labs priced in other currencies."
    )
    too_big = WhereTooBigOutput(allow_null=True, help_text="When the part fits no printer: the closest one.")
    fits_without_material = serializers.IntegerField()
    message = serializers.SerializerMethodField(help_text="Why no lab is listed; empty when some are.")

    def get_message(self, answer: where.WhereAnswer) -> str:
        return where.nothing_found(answer)


def _param(name: str, description: str, **kwargs) -> OpenApiParameter:
    return OpenApiParameter(name, str, description=description, **kwargs)


class WhereApi(APIView):
    @extend_schema(
        parameters=[
            _param("design", "owner/slug of the design (with path), or give size."),
            _param("path", "The mesh file in the design."),
            _param("rev", "Branch, tag or commit (default: the default branch)."),
            _param("size", "Instead of a design: the part's extents in mm, e.g. 120x40x12."),
            _param("volume", "With size: the part's volume in mm³ (for the cost and time)."),
            _param("material", "Default PLA."),
            _param("colour", "Empty: any colour."),
            _param("nozzle", "Nozzle diameter in mm; empty: any."),
            OpenApiParameter("copies", int, description="1 to 100 (default 1)."),
            _param("sort", "soonest (default), cheapest or nearest.", enum=list(where.SORTS)),
            _param("currency", "sort=cheapest: the currency to sort (default: the most common)."),
            OpenApiParameter("lat", float, description="Where you are, with lon (for distances)."),
            OpenApiParameter("lon", float, description="With lat."),
            _param("place", "A city's name instead of lat/lon, e.g. Lyon or 'Lyon, FR'."),
        ],
        responses={200: WhereOutput, **errors(404, 409)},
        description=(
            "Where can I make this: every lab that can make the part, its best printer, what "
            "must be done first, membership and qualification, an estimated start and finish "
            "(the dispatcher's order played forward over the queue, the timeline and opening "
            "hours: an estimate) and an estimated cost. A part that fits nowhere answers 200 "
            "with no options, the closest build volume (too_big) and a message."
        ),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        person = viewer(request)
        one = {name: _single(params, name) for name in ("design", "path", "rev", "size", "volume")}
        if one["size"] is not None:
            if one["design"] is not None or one["path"] is not None:
                raise ValidationError("Give either a design and path, or a size: not both.", field="size")
            part = where.part_of_size(size=one["size"], volume_mm3=one["volume"])
        elif one["design"] is not None:
            part = where.part_of_design(
                viewer=person, design=one["design"], path=one["path"] or "", rev=one["rev"] or ""
            )
        else:
            raise ValidationError("Give design=owner/slug and path=, or size=XxYxZ.", field="design")
        place = where.place_from(
            latitude=_single(params, "lat"),
            longitude=_single(params, "lon"),
            name=_single(params, "place") or "",
        )
        answer = where.where_to_make(
            viewer=person,
            part=part,
            material=_single(params, "material") or "PLA",
            colour=_single(params, "colour") or "",
            nozzle_mm=_single(params, "nozzle"),
            copies=positive_int(params, name="copies", default=1),
            sort=choice(params, name="sort", choices=where.SORTS) or "soonest",
            place=place,
            currency=_single(params, "currency"),
        )
        return Response(WhereOutput(answer).data)


def _single(params, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise ValidationError(f"Give {name} once, not {len(values)} times.", field=name)
    return values[0] if values else None
