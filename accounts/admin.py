from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django.contrib import admin, messages
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.auth.admin import UserAdmin
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.html import format_html
from user_agents import parse as parse_user_agent

from accounts.models import User, UserSession
from accounts.sessions import sessions_end
from cart.cart import Cart

MASK = "•••••••• (hidden)"

admin.site.register(User, UserAdmin)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(expire_date__gt=timezone.now())
        if self.value() == "expired":
            return queryset.filter(expire_date__lte=timezone.now())
        return queryset


class SignedInFilter(admin.SimpleListFilter):
    title = "signed in"
    parameter_name = "signed_in"

    def lookups(self, request, model_admin):
        return [("yes", "Signed in"), ("no", "Anonymous")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(user__isnull=self.value() == "no")
        return queryset


def _decoded(obj: UserSession) -> dict:
    # Decoded once per row and page: the columns below all read it.
    if not hasattr(obj, "_decoded_cache"):
        obj._decoded_cache = obj.get_decoded()
    return obj._decoded_cache


def _basket(obj: UserSession) -> dict:
    return Cart._clean(_decoded(obj).get("cart"))


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    list_display = [
        "short_key",
        "user",
        "ip_address",
        "browser",
        "created_at",
        "last_activity",
        "expire_date",
        "basket_items",
        "basket_total",
    ]
    list_filter = [StatusFilter, SignedInFilter]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email", "ip_address"]
    ordering = ["-last_activity"]
    fields = [
        "short_key",
        "user",
        "ip_address",
        "user_agent",
        "created_at",
        "last_activity",
        "authenticated_at",
        "expire_date",
        "basket_items",
        "basket_total",
        "data",
    ]
    readonly_fields = fields
    actions = ["revoke_sessions", "sign_out_users"]

    # --- Columns --------------------------------------------------------------------
    @admin.display(description="key")
    def short_key(self, obj: UserSession) -> str:
        return obj.session_key[:8] + "…"

    @admin.display(description="browser")
    def browser(self, obj: UserSession) -> str:
        if not obj.user_agent:
            return "—"
        agent = parse_user_agent(obj.user_agent)
        return f"{agent.browser.family} on {agent.os.family}"

    @admin.display(description="basket items")
    def basket_items(self, obj: UserSession) -> int:
        return sum(line["quantity"] for line in _basket(obj).values())

    @admin.display(description="basket total")
    def basket_total(self, obj: UserSession) -> str:
        total = Decimal("0.00")
        for line in _basket(obj).values():
            try:
                total += Decimal(line["price"]) * line["quantity"]
            except InvalidOperation:
                continue
        return f"£{total:.2f}"

    @admin.display(description="session data")
    def data(self, obj: UserSession) -> str:
        shown = dict(_decoded(obj))
        if HASH_SESSION_KEY in shown:
            shown[HASH_SESSION_KEY] = MASK
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, sort_keys=True, cls=DjangoJSONEncoder))

    # --- Permissions: look and revoke, never edit ----------------------------------------
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    # --- Ending sessions: PostgreSQL and Redis together ---------------------------------
    def delete_model(self, request, obj: UserSession) -> None:
        sessions_end([obj.session_key])

    def delete_queryset(self, request, queryset) -> None:
        sessions_end(queryset.values_list("session_key", flat=True))

    @admin.action(description="Revoke selected sessions", permissions=["delete"])
    def revoke_sessions(self, request, queryset) -> None:
        ended = sessions_end(queryset.values_list("session_key", flat=True))
        self.message_user(request, f"Revoked {ended} session(s).", messages.SUCCESS)

    @admin.action(description="Sign out all sessions of these users", permissions=["delete"])
    def sign_out_users(self, request, queryset) -> None:
        user_ids = set(queryset.exclude(user=None).values_list("user_id", flat=True))
        keys = UserSession.objects.filter(user_id__in=user_ids).values_list("session_key", flat=True)
        ended = sessions_end(keys)
        self.message_user(request, f"Signed out {len(user_ids)} user(s): {ended} session(s) ended.", messages.SUCCESS)
