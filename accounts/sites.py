"""The admin site, its sign-in and password change counted by the sign-in throttle."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from accounts.forms import AdminLoginForm, AdminPasswordChangeForm
from accounts.views import PasswordChangeView


class AdminSite(admin.AdminSite):
    login_form = AdminLoginForm
    password_change_form = AdminPasswordChangeForm

    def password_change(self, request, extra_context=None):
        # Django 5.2 names its form inside this method; 6.0 reads the
        # password_change_form attribute instead (#36121), and this override goes.
        defaults = {
            "form_class": self.password_change_form,
            "success_url": reverse("admin:password_change_done", current_app=self.name),
            "extra_context": {**self.each_context(request), **(extra_context or {})},
        }
        if self.password_change_template is not None:
            defaults["template_name"] = self.password_change_template
        request.current_app = self.name
        return PasswordChangeView.as_view(**defaults)(request)
