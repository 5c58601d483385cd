"""Pages of the hub app (sign-up, tokens), and how every page answers a domain error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views import defaults

from hub import services
from hub.auth import Credential, signed_in_user
from hub.exceptions import HubError, NotFound, PermissionDenied
from hub.models import AccessToken, User
from hub.profiles import profile_panels

# -- errors -------------------------------------------------------------------------------

Response = TypeVar("Response", bound=HttpResponseBase)  # a page's answer: a file is one too


def hub_page(view: Callable[..., Response]) -> Callable[..., Response | HttpResponse]:
    """The one place a page turns a HubError into an answer.

    NotFound is a 404 and PermissionDenied a 403 wherever they are raised (a private
    design is a 404, never a hint that it exists). Any other refusal of a POST becomes a
    message on the page the browser is sent back to; of a GET, an error page with the
    error's status. Errors that belong to a form are caught first by `form_call`.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Response | HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.message) from exc
        except HubError as exc:
            if request.method == "POST":
                messages.error(request, exc.message)
                return redirect(request.get_full_path())
            return render(request, "error.html", {"message": exc.message}, status=exc.status)

    return wrapper


def form_call(form: forms.BaseForm, service: Callable[..., Any], /, **kwargs: Any) -> tuple[bool, Any]:
    """Run `service` for a submitted form: (True, its result), or (False, None) with the
    refusal added to the form's errors so the person can fix it and resend.

    PermissionDenied is not a mistake in the form: it still reaches `hub_page` as a 403.
    """
    try:
        return True, service(**kwargs)
    except PermissionDenied:
        raise
    except HubError as exc:
        form.add_error(None, exc.message)
        return False, None


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 for an address no route matches (`handler404`). Under /api/ it answers
    in the API's error shape, as the API's own 404s do, not with an HTML page: a client
    asking for `/api/bookings/x/` reads JSON whatever it got wrong."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


# -- sign-up ------------------------------------------------------------------------------


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
        help_texts = {"username": "Your address on the hub: letters, digits, '.', '-' or '_'."}

    # Username rules (reserved names, characters safe on disk) live on the model field.


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("design-list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}!")
        return redirect("design-list")
    return render(request, "hub/signup.html", {"form": form})


# -- profiles -----------------------------------------------------------------------------


def profile(request: HttpRequest, username: str) -> HttpResponse:
    """A person's page: what the apps show of them (hub.profiles), as the requester may see it."""
    person = User.objects.filter(username=username, is_active=True).first()
    if person is None:
        raise Http404(f"No one is called {username!r} here.")
    return render(request, "hub/profile.html", {"person": person, "panels": profile_panels(request, person)})


# -- personal access tokens ---------------------------------------------------------------


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'laptop' or 'CI'.")
    scope = forms.ChoiceField(choices=AccessToken.Scope.choices, initial=AccessToken.Scope.WRITE)


@login_required
@hub_page
def tokens(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = TokenForm(request.POST if request.POST.get("action") == "create" else None)
    created = raw = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            services.token_revoke(user=user, token_id=_int(request.POST.get("token_id")))
            messages.success(request, "Token revoked: it no longer works.")
            return redirect("tokens")
        if form.is_valid():
            # Shown in this response only: the raw value is never stored, so no redirect.
            # Pages sign in only by session (login_required), so that is the credential.
            created, raw = services.token_create(
                user=user, credential=Credential.session(), **form.cleaned_data
            )
            form = TokenForm()
    active = user.access_tokens.filter(revoked_at__isnull=True)
    return render(
        request, "hub/tokens.html", {"form": form, "tokens": active, "created": created, "raw": raw}
    )


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("No such token.") from None
