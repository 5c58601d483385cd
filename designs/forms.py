"""Forms of the design pages. They only shape input; the services decide what is allowed."""

from __future__ import annotations

from django import forms

from designs.models import Collaborator, Design, Licence, OkhDocumentationReadiness, OkhTechnologyReadiness


def _offer(form: forms.Form, name: str, values: list[str]) -> None:
    """Let the choice field `name` offer exactly `values` (known only per request)."""
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = [(value, value) for value in values]


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
    allow_default_branch_rewrite = forms.BooleanField(
        required=False,
        label="Allow force pushes to the default branch",
        help_text="Off: its history can only grow; a push that rewrites or deletes it is refused.",
    )
    allow_tag_changes = forms.BooleanField(
        required=False,
        label="Allow moving and deleting tags",
        help_text="Off: every tag is a release, fixed once made.",
    )
    # What an Open Know-How manifest needs and the hub cannot derive (designs/okh.py).
    okh_function = forms.CharField(
        required=False,
        max_length=2000,
        label="Function (Open Know-How)",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the design does, for OKH crawlers. Empty: the summary.",
    )
    okh_technology_readiness = forms.ChoiceField(
        required=False,
        label="Technology readiness (Open Know-How)",
        choices=[("", "Not stated"), *OkhTechnologyReadiness.choices],
    )
    okh_documentation_readiness = forms.ChoiceField(
        required=False,
        label="Documentation readiness (Open Know-How)",
        choices=[("", "Not stated"), *OkhDocumentationReadiness.choices],
    )
    okh_documentation_language = forms.CharField(
        required=False,
        max_length=35,
        label="Documentation language (Open Know-How)",
        help_text="A BCP 47 language tag, e.g. en or en-GB.",
    )

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
                "allow_default_branch_rewrite": design.allow_default_branch_rewrite,
                "allow_tag_changes": design.allow_tag_changes,
                "okh_function": design.okh_function,
                "okh_technology_readiness": design.okh_technology_readiness,
                "okh_documentation_readiness": design.okh_documentation_readiness,
                "okh_documentation_language": design.okh_documentation_language,
            },
        )
        super().__init__(*args, **kwargs)
        _offer(self, "default_branch", branches or [design.default_branch])
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
    files = MultipleFileField(allow_empty_file=True)  # type: ignore[assignment]  # a declared field, not BaseForm.files
    folder = forms.CharField(
        required=False,
        help_text="Put the files in this folder, e.g. parts/printed. Empty: the top.",
    )
    message = forms.CharField(max_length=10000, widget=forms.Textarea(attrs={"rows": 2}))
    branch = forms.ChoiceField(choices=[])

    def __init__(self, *args, branches: list[str], default: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # An empty design has no branch yet: its first commit creates the default one.
        _offer(self, "branch", branches or [default])


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


# -- proposals and mirrors ----------------------------------------------------------------


class ProposalPickForm(forms.Form):
    """The branch pickers of a new proposal: which branch of which design goes where."""

    source = forms.ChoiceField(choices=[], label="From design")
    source_branch = forms.ChoiceField(choices=[], label="From branch")
    target = forms.ChoiceField(choices=[], label="Into design")
    target_branch = forms.ChoiceField(choices=[], label="Into branch")

    def __init__(
        self,
        *args,
        sources: list[str],
        source_branches: list[str],
        targets: list[str],
        target_branches: list[str],
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        _offer(self, "source", sources)
        _offer(self, "source_branch", source_branches)
        _offer(self, "target", targets)
        _offer(self, "target_branch", target_branches)


class ProposalForm(ProposalPickForm):
    """Opening the proposal that was previewed: the picks travel as hidden fields."""

    title = forms.CharField(max_length=200)
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6}), help_text="Markdown: what changes, and why."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("source", "source_branch", "target", "target_branch"):
            self.fields[name].widget = forms.HiddenInput()
        # Left out, the target is the page's default one (the upstream of a fork).
        self.fields["target"].required = False


class CommentForm(forms.Form):
    body = forms.CharField(label="Comment", widget=forms.Textarea(attrs={"rows": 4}), max_length=20000)


class CredentialFields(forms.Form):
    username = forms.CharField(
        max_length=200, required=False, help_text="For http(s) remotes that need one (fabhub: your username)."
    )
    token = forms.CharField(
        max_length=4096,
        required=False,
        label="Token or password",
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again.",
    )


class MirrorCreateForm(CredentialFields):
    url = forms.CharField(
        max_length=2000, label="Repository address", help_text="https://… or ssh://… of a git repository."
    )
    slug = forms.CharField(
        max_length=100, label="Name", help_text="Lowercase letters, digits, '.', '-' or '_'."
    )
    title = forms.CharField(max_length=200, required=False)
    summary = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    licence = forms.ChoiceField(choices=Licence.choices, help_text="The licence of the design you mirror.")
    visibility = forms.ChoiceField(
        choices=Design.Visibility.choices, widget=forms.RadioSelect, initial=Design.Visibility.PUBLIC
    )
    interval = forms.IntegerField(
        required=False, min_value=1, label="Refresh every (seconds)", help_text="Empty: the hub's default."
    )
    field_order = [
        "url",
        "slug",
        "title",
        "summary",
        "licence",
        "visibility",
        "username",
        "token",
        "interval",
    ]


class PullMirrorForm(CredentialFields):
    url = forms.CharField(max_length=2000, label="Repository address")
    interval = forms.IntegerField(min_value=1, label="Refresh every (seconds)")
    clear_credential = forms.BooleanField(required=False, label="Forget the stored credential")
    field_order = ["url", "interval", "username", "token", "clear_credential"]


class PushMirrorForm(CredentialFields):
    url = forms.CharField(
        max_length=2000, label="Push to", help_text="https://… or ssh://… of a git repository."
    )
    field_order = ["url", "username", "token"]
