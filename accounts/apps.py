from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin on the shop's site (accounts/sites.py), named in INSTALLED_APPS for django.contrib.admin."""

    default = False  # the accounts app's own config stays AccountsConfig
    default_site = "accounts.sites.AdminSite"
