"""Read accounts, their orders and their sessions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from user_agents import parse as parse_user_agent

from accounts.models import User
from durable_sessions.models import UserSession
from shop.models import Order


def session_public_id(session_key: str) -> str:
    """Return an id for a session that is safe to show: never the key itself."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SessionSummary:
    public_id: str
    browser: str
    os: str
    device: str
    ip_address: str | None
    last_activity: datetime | None
    created_at: datetime | None
    is_current: bool


def session_summary(row: UserSession, *, current_key: str | None) -> SessionSummary:
    agent = parse_user_agent(row.user_agent or "")
    browser = f"{agent.browser.family} {agent.browser.version_string}".strip()
    os = f"{agent.os.family} {agent.os.version_string}".strip()
    return SessionSummary(
        public_id=session_public_id(row.session_key),
        browser=browser if row.user_agent else "Unknown browser",
        os=os if row.user_agent else "Unknown system",
        device="Mobile" if agent.is_mobile else "Tablet" if agent.is_tablet else "Computer",
        ip_address=row.ip_address,
        last_activity=row.last_activity,
        created_at=row.created_at,
        is_current=row.session_key == current_key,
    )


def user_order_list(*, user: User) -> QuerySet[Order]:
    return Order.objects.filter(user=user).prefetch_related("lines").order_by("-created_at", "-id")
