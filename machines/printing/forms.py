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
        fields = ["requires_approval", "max_active_jobs", "weekly_print_minutes", "slicer"]
        labels = {"requires_approval": "Jobs need a manager's approval"}

    def _post_clean(self):
        pass


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)
