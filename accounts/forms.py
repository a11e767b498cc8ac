from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import forms as auth_forms
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from accounts import throttle
from accounts.models import User

THROTTLED_MESSAGE = (
    "Too many failed sign-ins for this account or from your address. Try again in %(when)s, or reset your password."
)


def _throttled_error(lockout: throttle.Lockout) -> forms.ValidationError:
    when = "1 minute" if lockout.minutes == 1 else f"{lockout.minutes} minutes"
    return forms.ValidationError(THROTTLED_MESSAGE, code="throttled", params={"when": when})


class SignupForm(auth_forms.UserCreationForm):
    email = forms.EmailField(label="Email", help_text="For your receipts and password resets.")

    class Meta(auth_forms.UserCreationForm.Meta):
        model = User
        fields = ["username", "email"]


class ThrottleMessageMixin:
    """Say when to try again when the throttle (ThrottledModelBackend) refused or just locked the sign-in."""

    def get_invalid_login_error(self):
        lockout = throttle.lockout(self.request, self.cleaned_data.get("username") or "")
        return _throttled_error(lockout) if lockout else super().get_invalid_login_error()


class LoginForm(ThrottleMessageMixin, auth_forms.AuthenticationForm):
    pass


class AdminLoginForm(ThrottleMessageMixin, AdminAuthenticationForm):
    pass


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's password change, its old-password check counted by the sign-in throttle.

    Someone holding a signed-in session (a borrowed laptop, a stolen cookie)
    could otherwise guess the password here as fast as the server hashes.
    """

    def __init__(self, user, *args, request: HttpRequest, **kwargs) -> None:
        self.request = request
        super().__init__(user, *args, **kwargs)

    @sensitive_variables("old_password")
    def clean_old_password(self):
        username = self.user.get_username()
        if not throttle.attempt_count(self.request, username):
            # Refused unchecked; no lockout left to read means its window has just closed.
            raise _throttled_error(throttle.lockout(self.request, username) or throttle.Lockout(seconds=0))
        try:
            old_password = super().clean_old_password()
        except forms.ValidationError:
            lockout = throttle.lockout(self.request, username)
            if lockout:  # this wrong guess was the last one allowed
                raise _throttled_error(lockout) from None
            raise
        throttle.attempt_succeeded(self.request, username)
        return old_password


class AdminPasswordChangeForm(PasswordChangeForm):
    required_css_class = "required"  # as Django's admin form, for the admin's label styles
