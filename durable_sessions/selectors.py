"""Read what the sessions overview shows: sessions now, the last 24 hours, and this process's cache."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone
from prometheus_client import REGISTRY
from user_agents import parse as parse_user_agent

from durable_sessions.cache.backend import breaker_state
from durable_sessions.metrics import END_REASONS, HIT, MISS
from durable_sessions.models import SessionEnd, UserSession

HOURS = 24
# Browsers and systems beyond this many are counted together as "other".
TOP = 6


@dataclass(frozen=True)
class Overview:
    active_sessions: int
    signed_in_users: int
    # (start of the hour, count), oldest first, HOURS of them.
    sessions_started: list[tuple[datetime, int]]
    sign_ins: list[tuple[datetime, int]]
    ended_by_reason: list[tuple[str, int]]
    browsers: list[tuple[str, int]]
    systems: list[tuple[str, int]]
    breaker: str
    cache_hits: int
    cache_misses: int

    @property
    def cache_reads(self) -> int:
        return self.cache_hits + self.cache_misses

    @property
    def hit_ratio(self) -> float | None:
        return self.cache_hits / self.cache_reads if self.cache_reads else None


def _per_hour(field: str, since: datetime, hours: list[datetime]) -> list[tuple[datetime, int]]:
    """Count live and ended sessions whose ``field`` falls in each hour since ``since``."""
    counts: Counter[datetime] = Counter()
    for model in (UserSession, SessionEnd):
        rows = (
            model.objects.filter(**{f"{field}__gte": since})
            .annotate(hour=TruncHour(field, tzinfo=UTC))
            .values("hour")
            .annotate(n=Count("pk"))
        )
        counts.update({row["hour"]: row["n"] for row in rows})
    return [(hour, counts[hour]) for hour in hours]


def _top(counts: Counter[str]) -> list[tuple[str, int]]:
    ranked = counts.most_common()
    other = sum(n for _, n in ranked[TOP:])
    return ranked[:TOP] + ([("other", other)] if other else [])


def session_overview(*, now: datetime | None = None) -> Overview:
    """Return the sessions overview as of ``now``: PostgreSQL's figures, and this process's cache and breaker."""
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    hours = [this_hour - timedelta(hours=n) for n in range(HOURS - 1, -1, -1)]
    live = UserSession.objects.filter(expire_date__gt=now)
    browsers: Counter[str] = Counter()
    systems: Counter[str] = Counter()
    # One parse per distinct user agent, however many sessions share it.
    for row in live.values("user_agent").annotate(n=Count("pk")):
        agent = parse_user_agent(row["user_agent"] or "")
        browsers[agent.browser.family or "unknown"] += row["n"]
        systems[agent.os.family or "unknown"] += row["n"]
    ended = dict(
        SessionEnd.objects.filter(ended_at__gte=hours[0]).values_list("reason").annotate(n=Count("pk")).order_by()
    )
    return Overview(
        active_sessions=live.count(),
        signed_in_users=live.exclude(user=None).values("user").distinct().count(),
        sessions_started=_per_hour("created_at", hours[0], hours),
        sign_ins=_per_hour("authenticated_at", hours[0], hours),
        ended_by_reason=[(reason, ended.get(reason, 0)) for reason in END_REASONS],
        browsers=_top(browsers),
        systems=_top(systems),
        breaker=breaker_state() or "none",
        cache_hits=int(REGISTRY.get_sample_value("shop_session_cache_requests_total", {"result": HIT}) or 0),
        cache_misses=int(REGISTRY.get_sample_value("shop_session_cache_requests_total", {"result": MISS}) or 0),
    )
