from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts import throttle
from accounts.models import User


class SignupForm(UserCreationForm):
    email = forms.EmailField(label="Email", help_text="For your receipts and password resets.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username", "email"]


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed sign-ins for this account or from your address. "
        "Please wait a few minutes and try again, or reset your password.",
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        if username and throttle.is_throttled(self.request, username):
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled")
        return super().clean()
