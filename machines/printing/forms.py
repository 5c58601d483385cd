"""Forms of the print queue pages. They only shape input; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from machines.forms import choice_field
from machines.models import LabAgent, Machine, Printer, PrintJob, PrintSettings


class PrintJobForm(forms.Form):
    lab = forms.ChoiceField(label="Lab")
    design = forms.CharField(
        required=False, label="Design", help_text="owner/slug, e.g. ada/wikispeed-modular-car."
    )
    path = forms.CharField(required=False, label="File in the design", help_text="STL, 3MF, OBJ or G-code.")
    rev = forms.CharField(
        required=False, label="Version", help_text="Branch, tag or commit; pinned when you send it."
    )
    file = forms.FileField(required=False, label="…or a G-code file", help_text="Instead of a design file.")
    material = forms.CharField(initial="PLA", max_length=40)
    colour = forms.CharField(required=False, max_length=40, help_text="Empty: any colour.")
    nozzle_mm = forms.DecimalField(
        required=False, max_digits=4, decimal_places=2, label="Nozzle (mm)", help_text="Empty: any nozzle."
    )
    copies = forms.IntegerField(initial=1, min_value=1, max_value=100)
    priority = forms.TypedChoiceField(
        choices=PrintJob.Priority.choices,
        coerce=int,
        initial=PrintJob.Priority.NORMAL,
        help_text="Above normal: managers only.",
    )
    machine_kind = forms.ChoiceField(
        choices=Machine.Kind.choices, initial=Machine.Kind.FDM_PRINTER, label="Machine"
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, labs=(), **kwargs):
        super().__init__(*args, **kwargs)
        choice_field(self, "lab").choices = [(lab.slug, lab.name) for lab in labs]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if bool(data.get("design")) == bool(data.get("file")):
            raise forms.ValidationError("Give either a design file or a G-code file.")
        if data.get("design") and not data.get("path"):
            self.add_error("path", "Say which file of the design to print.")
        return data


DIRECT = ""


class PrinterForm(forms.ModelForm):
    driven_by = forms.ChoiceField(
        label="Driven by",
        required=False,
        help_text="Through a lab agent, the hub forgets the connection URL and key it stored for the printer.",
    )

    class Meta:
        model = Printer
        fields = [
            "accepts_jobs",
            "material",
            "colour",
            "nozzle_mm",
            "after_print",
            "profile_name",
            "slicer_profile",
            "serial_port",
            "baudrate",
        ]
        widgets = {"slicer_profile": forms.Textarea(attrs={"rows": 8, "class": "mono"})}
        labels = {
            "accepts_jobs": "Takes queued jobs",
            "nozzle_mm": "Nozzle (mm)",
            "after_print": "After a print",
        }

    field_order = ["driven_by"]

    def __init__(self, *args, agents: list[LabAgent], current: LabAgent | None, **kwargs):
        """`agents`: those it may be given to (the lab's active ones; the current one is
        listed even if revoked, so the form shows the truth until it is changed)."""
        super().__init__(*args, **kwargs)
        self.agents = {str(a.pk): a for a in agents}
        if current is not None:
            self.agents.setdefault(str(current.pk), current)
        field = choice_field(self, "driven_by")
        field.choices = [
            (DIRECT, "Directly by the hub (connection URL and key)"),
            *(
                (key, f"Lab agent: {a.name} ({a.hint}…)" + ("" if a.is_active else " — revoked"))
                for key, a in self.agents.items()
            ),
        ]
        field.initial = str(current.pk) if current is not None else DIRECT

    def _post_clean(self):  # the service validates, with its own messages
        pass

    def printer_fields(self) -> dict[str, Any]:
        """What `printer_configure` takes: everything but how the printer is driven."""
        return {name: value for name, value in self.cleaned_data.items() if name != "driven_by"}

    def chosen_agent(self) -> LabAgent | None:
        return self.agents.get(self.cleaned_data.get("driven_by") or DIRECT)


class PrintSettingsForm(forms.ModelForm):
    class Meta:
        model = PrintSettings
        fields = [
            "requires_approval",
            "max_active_jobs",
            "weekly_print_minutes",
            "slicer",
            "currency",
            "price_per_job",
            "price_per_machine_hour",
            "credits_enabled",
            "overrun_tolerance_percent",
            "failed_prints",
        ]
        labels = {
            "requires_approval": "Jobs need a manager's approval",
            "currency": "Currency (ISO 4217)",
            "price_per_job": "Fee per print",
            "price_per_machine_hour": "Price per machine-hour",
            "credits_enabled": "Members pay from prepaid credit",
            "overrun_tolerance_percent": "Overrun charged up to (% of the hold)",
            "failed_prints": "Failed prints",
        }
        help_texts = {
            "price_per_job": "Charged for every print, copies included; 0 for none.",
            "price_per_machine_hour": "A machine may set its own price per hour.",
            "credits_enabled": "Submissions hold the estimate from the member's balance; the end of the print settles it.",
        }

    def _post_clean(self):
        pass


class MaterialPriceForm(forms.Form):
    material = forms.CharField(max_length=40)
    price_per_gram = forms.DecimalField(max_digits=14, decimal_places=6, label="Price per gram")
    density_g_cm3 = forms.DecimalField(
        max_digits=14,
        decimal_places=6,
        required=False,
        label="Density (g/cm³)",
        help_text="Empty: PLA's 1.24.",
    )


class TopUpForm(forms.Form):
    member = forms.ChoiceField()
    amount = forms.DecimalField(max_digits=14, decimal_places=6)
    note = forms.CharField(required=False, max_length=300, help_text="e.g. paid cash, receipt 42.")

    def __init__(self, *args, members=(), **kwargs):
        super().__init__(*args, **kwargs)
        choice_field(self, "member").choices = [(u.username, u.username) for u in members]


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)
