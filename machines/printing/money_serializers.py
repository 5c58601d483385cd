"""Input and output shapes of the prices, credits and report API (money_api.py)."""

from __future__ import annotations

from rest_framework import serializers

from hub.inputs import Input
from machines.models import CreditAccount, CreditEntry


class MaterialPriceInput(Input):
    # Strings or numbers with up to 6 decimals reach the service, which says what is wrong.
    price_per_gram = serializers.DecimalField(max_digits=14, decimal_places=6)
    density_g_cm3 = serializers.DecimalField(
        max_digits=14, decimal_places=6, required=False, allow_null=True, help_text="g/cm³; PLA is 1.24."
    )


class MaterialPriceCreateInput(MaterialPriceInput):
    material = serializers.CharField(max_length=40)


class CreditAccountOutput(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    available = serializers.SerializerMethodField()
    currency = serializers.SerializerMethodField()

    class Meta:
        model = CreditAccount
        fields = ["user", "balance", "held", "available", "currency"]

    def get_available(self, account: CreditAccount) -> str:
        """What new jobs and bookings may hold: the balance less what is held."""
        return str(account.balance - account.held)

    def get_currency(self, account: CreditAccount) -> str:
        return self.context.get("currency", "")


class CreditEntryOutput(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = CreditEntry
        fields = [
            "id",
            "kind",
            "amount",
            "balance_after",
            "held_after",
            "job",
            "booking",
            "actor",
            "note",
            "created_at",
        ]

    def get_actor(self, entry: CreditEntry) -> str | None:
        return entry.actor.username if entry.actor is not None else None


class CreditLedgerOutput(serializers.Serializer):
    account = CreditAccountOutput()
    entries = CreditEntryOutput(many=True)


class TopUpInput(Input):
    amount = serializers.DecimalField(max_digits=14, decimal_places=6)
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
