"""Let staff see, decode and revoke sessions; nobody edits one."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from user_agents import parse as parse_user_agent

from durable_sessions.charts import bar_chart
from durable_sessions.metrics import REVOKED
from durable_sessions.models import UserSession
from durable_sessions.selectors import session_overview
from durable_sessions.services import sessions_end
from durable_sessions.stamps import STAMPS_KEY

MASK = "•••••••• (hidden)"


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


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    """Sessions, with their user, client and times. Apps add columns by subclassing (see cart.admin).

    The decoded data shows only the keys in ``shown_keys``: anything else a
    session holds (the password hash stamp, a reset token, keys of apps that
    did not say theirs are safe to show) is masked. Apps extend it with their
    own keys.
    """

    shown_keys = frozenset({SESSION_KEY, BACKEND_SESSION_KEY, STAMPS_KEY})

    list_display = ["short_key", "user", "ip_address", "browser", "created_at", "last_activity", "expire_date"]
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

    @admin.display(description="session data")
    def data(self, obj: UserSession) -> str:
        shown = {key: value if key in self.shown_keys else MASK for key, value in obj.stored.items()}
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, sort_keys=True, cls=DjangoJSONEncoder))

    # --- The overview ------------------------------------------------------------------------
    def get_urls(self):
        overview = path("overview/", self.admin_site.admin_view(self.overview_view), name="durable_sessions_overview")
        return [overview, *super().get_urls()]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Show sessions now and over the last 24 hours, with SVG charts drawn here (needs *view session*)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        overview = session_overview()
        charts = [
            bar_chart("Sessions started per hour, last 24 hours (UTC)", _by_hour(overview.sessions_started)),
            bar_chart("Sign-ins per hour, last 24 hours (UTC)", _by_hour(overview.sign_ins)),
            bar_chart("Ended sessions by reason, last 24 hours", overview.ended_by_reason),
            bar_chart("Active sessions by browser", overview.browsers),
            bar_chart("Active sessions by system", overview.systems),
        ]
        context = {**self.admin_site.each_context(request), "title": "Sessions overview", "overview": overview}
        return TemplateResponse(request, "admin/durable_sessions/overview.html", {**context, "charts": charts})

    # --- Permissions: look and revoke, never edit ----------------------------------------
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    # --- Ending sessions: PostgreSQL and Redis together ---------------------------------
    def delete_model(self, request, obj: UserSession) -> None:
        sessions_end([obj.session_key], reason=REVOKED)

    def delete_queryset(self, request, queryset) -> None:
        sessions_end(queryset.values_list("session_key", flat=True), reason=REVOKED)

    @admin.action(description="Revoke selected sessions", permissions=["delete"])
    def revoke_sessions(self, request, queryset) -> None:
        ended = sessions_end(queryset.values_list("session_key", flat=True), reason=REVOKED)
        self.message_user(request, f"Revoked {ended} session(s).", messages.SUCCESS)

    @admin.action(description="Sign out all sessions of these users", permissions=["delete"])
    def sign_out_users(self, request, queryset) -> None:
        user_ids = set(queryset.exclude(user=None).values_list("user_id", flat=True))
        keys = UserSession.objects.filter(user_id__in=user_ids).values_list("session_key", flat=True)
        ended = sessions_end(keys, reason=REVOKED)
        self.message_user(request, f"Signed out {len(user_ids)} user(s): {ended} session(s) ended.", messages.SUCCESS)


def _by_hour(series: list) -> list[tuple[str, int]]:
    """Label each (hour, count) by its hour of the day."""
    return [(f"{hour:%H}", n) for hour, n in series]
