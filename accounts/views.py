"""Sign up, sign in, and let people see and end their sessions."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.forms import LoginForm, PasswordChangeForm, SignupForm
from durable_sessions.backends.cached_db import storage_key_of
from durable_sessions.metrics import PASSWORD, REVOKED
from durable_sessions.services import sessions_end


def _sign_in(request: HttpRequest, user, backend: str | None = None) -> None:
    merged = services.user_sign_in(request=request, user=user, backend=backend)
    if merged:
        messages.info(request, "We added what you left in your basket on another device: " + ", ".join(merged) + ".")


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        _sign_in(self.request, form.get_user())  # rotates the session key, keeps its data
        messages.success(self.request, f"Welcome back, {form.get_user().get_username()}.")
        return HttpResponseRedirect(self.get_success_url())


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, handing the request to the form for the sign-in throttle (the admin's too)."""

    form_class = PasswordChangeForm

    @method_decorator(never_cache)
    def dispatch(self, *args, **kwargs):
        return super().dispatch(*args, **kwargs)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


class AccountPasswordChangeView(PasswordChangeView):
    success_url = reverse_lazy("accounts:account")

    def form_valid(self, form):
        response = super().form_valid(form)  # keeps this session signed in
        ended = services.user_sessions_end(
            user=form.user, reason=PASSWORD, keep_session_key=storage_key_of(self.request.session)
        )
        messages.success(self.request, f"Password changed. {ended} other session(s) were signed out.")
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_sessions_end(user=form.user, reason=PASSWORD)
        return response


@never_cache  # the form comes back with the name and email typed in
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:account")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        _sign_in(request, user, backend="accounts.throttle.ThrottledModelBackend")
        messages.success(request, f"Welcome, {user.get_username()}! Your account is ready.")
        return redirect("accounts:account")
    return render(request, "registration/signup.html", {"form": form})


@never_cache
@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/account.html", {"orders": selectors.user_order_list(user=request.user)})


@never_cache
@require_GET
def me(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse(
        {"authenticated": user.is_authenticated, "username": user.get_username() if user.is_authenticated else None}
    )


@never_cache
@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    live, dead = services.user_session_rows(user=request.user)
    services.user_sessions_prune(dead)  # what can no longer sign anyone in
    current = storage_key_of(request.session)
    summaries = [selectors.session_summary(row, current_key=current) for row, _ in live]
    return render(request, "accounts/sessions.html", {"sessions": summaries})


@login_required
@require_POST
def session_end(request: HttpRequest, public_id: str) -> HttpResponse:
    live, _ = services.user_session_rows(user=request.user)
    keys = [row.session_key for row, _ in live if selectors.session_public_id(row.session_key) == public_id]
    if not keys:
        raise Http404("No such session.")
    if keys[0] == storage_key_of(request.session):
        messages.info(request, "To end this session, sign out.")
        return redirect("accounts:sessions")
    sessions_end(keys, reason=REVOKED)
    messages.success(request, "That session is signed out.")
    return redirect("accounts:sessions")


@login_required
@require_POST
def session_end_others(request: HttpRequest) -> HttpResponse:
    ended = services.user_sessions_end(
        user=request.user, reason=REVOKED, keep_session_key=storage_key_of(request.session)
    )
    messages.success(request, f"Signed out {ended} other session(s).")
    return redirect("accounts:sessions")
