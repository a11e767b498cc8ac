from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.middleware import user_snapshot_record

        # Pages can say who is signed in while PostgreSQL is down (accounts.middleware).
        user_logged_in.connect(user_snapshot_record, dispatch_uid="accounts.user_snapshot_record")


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin on the shop's site (accounts/sites.py), named in INSTALLED_APPS for django.contrib.admin."""

    default = False  # the accounts app's own config stays AccountsConfig
    default_site = "accounts.sites.AdminSite"
