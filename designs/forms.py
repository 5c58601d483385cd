"""Forms of the design pages. They only shape input; the services decide what is allowed."""

from __future__ import annotations

from django import forms

from designs.models import Collaborator, Design, Licence


def split_tags(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class SearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search")
    tag = forms.CharField(required=False)
    licence = forms.ChoiceField(required=False, choices=[("", "Any licence"), *Licence.choices])
    owner = forms.CharField(required=False)


class DesignFieldsForm(forms.Form):
    """What a design says about itself; shared by the new-design and settings forms."""

    title = forms.CharField(max_length=200)
    summary = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    licence = forms.ChoiceField(choices=Licence.choices)
    visibility = forms.ChoiceField(
        choices=Design.Visibility.choices,
        widget=forms.RadioSelect,
        initial=Design.Visibility.PUBLIC,
    )
    tags = forms.CharField(
        required=False, max_length=500, help_text="Comma-separated, e.g. robot-arm, 3d-printed"
    )

    def clean_tags(self) -> list[str]:
        return split_tags(self.cleaned_data["tags"])


class DesignCreateForm(DesignFieldsForm):
    slug = forms.CharField(
        max_length=100,
        label="Name",
        help_text="Part of the address: lowercase letters, digits, '.', '-' or '_'.",
    )
    field_order = ["slug", "title", "summary", "licence", "visibility", "tags"]


class DesignSettingsForm(DesignFieldsForm):
    default_branch = forms.ChoiceField(choices=[])

    def __init__(self, *args, design: Design, branches: list[str], **kwargs) -> None:
        kwargs.setdefault(
            "initial",
            {
                "title": design.title,
                "summary": design.summary,
                "licence": design.licence,
                "visibility": design.visibility,
                "tags": ", ".join(tag.name for tag in design.tags.all()),
                "default_branch": design.default_branch,
            },
        )
        super().__init__(*args, **kwargs)
        self.fields["default_branch"].choices = [(b, b) for b in branches or [design.default_branch]]
        if design.is_fork:
            # A fork inherits its licence; the field shows it but the browser sends nothing.
            self.fields["licence"].disabled = True
            self.fields["licence"].help_text = f"A fork keeps the licence of {design.forked_from_name}."


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if not data:
            raise forms.ValidationError("Choose at least one file.", code="required")
        cleaned = []
        for item in data:
            cleaned.append(super().clean(item, initial))
        return cleaned


class UploadForm(forms.Form):
    files = MultipleFileField(allow_empty_file=True)
    folder = forms.CharField(
        required=False,
        help_text="Put the files in this folder, e.g. parts/printed. Empty: the top.",
    )
    message = forms.CharField(max_length=10000, widget=forms.Textarea(attrs={"rows": 2}))
    branch = forms.ChoiceField(choices=[])

    def __init__(self, *args, branches: list[str], default: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # An empty design has no branch yet: its first commit creates the default one.
        self.fields["branch"].choices = [(b, b) for b in branches or [default]]


class DeleteFileForm(forms.Form):
    path = forms.CharField(widget=forms.HiddenInput)
    branch = forms.CharField(widget=forms.HiddenInput)
    message = forms.CharField(max_length=10000)


class RenameFileForm(forms.Form):
    path = forms.CharField(widget=forms.HiddenInput)
    branch = forms.CharField(widget=forms.HiddenInput)
    new_path = forms.CharField(label="New path")
    message = forms.CharField(max_length=10000)


class CompareForm(forms.Form):
    base = forms.CharField(required=False, help_text="Older: branch, tag or commit.")
    head = forms.CharField(required=False, help_text="Newer: branch, tag or commit.")


class BranchCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    start = forms.CharField(
        max_length=200,
        required=False,
        help_text="Branch, tag or commit; the default branch if empty.",
    )


class TagCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="e.g. v1.0")
    target = forms.CharField(
        max_length=200,
        required=False,
        help_text="Branch, tag or commit; the default branch if empty.",
    )
    notes = forms.CharField(required=False, label="Release notes", widget=forms.Textarea(attrs={"rows": 4}))


class ForkForm(forms.Form):
    slug = forms.CharField(
        max_length=100, required=False, label="Name of the fork", help_text="Empty: the same name."
    )


class CollaboratorForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Collaborator.Role.choices)
