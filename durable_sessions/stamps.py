"""Keep the tier's bookkeeping beside a session's data, out of the keys apps see.

What PostgreSQL and Redis hold for a session is the data apps wrote plus one
reserved key, ``STAMPS_KEY``, with when it began, was last active and was
signed in to, and from which client. The store splits them on load, so
``items()``, ``keys()`` and ``len()`` show only what apps wrote, while a warm
request still finds its timeouts in the one Redis entry it reads.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import SESSION_KEY

from durable_sessions.conf import app_settings
from durable_sessions.metrics import IDLE, LIFETIME

STAMPS_KEY = "_durable"
CREATED_AT = "created_at"
LAST_ACTIVITY = "last_activity"
AUTHENTICATED_AT = "authenticated_at"
IP_ADDRESS = "ip"
USER_AGENT = "user_agent"
# True when a member of staff signed in: the session then has the staff timeouts.
STAFF = "staff"
# Where releases before STAMPS_KEY kept the stamps: top-level keys of the data.
LEGACY_KEYS = {
    "_created_at": CREATED_AT,
    "_last_activity": LAST_ACTIVITY,
    "_authenticated_at": AUTHENTICATED_AT,
    "_ip": IP_ADDRESS,
    "_user_agent": USER_AGENT,
}

# What Redis holds for an ended session, for as long as its cookie could live:
# a read takes it for "no session" without asking PostgreSQL, and neither a
# late write nor a re-cache after a miss (ADD) can put the session back.
ENDED = {"_ended": True}


def is_ended(payload: object) -> bool:
    """Return whether a session cache entry is a tombstone."""
    return isinstance(payload, dict) and payload.get("_ended") is True


def split(payload: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the apps' data and the stamps of a stored session (of any release)."""
    if not isinstance(payload, dict):
        return {}, {}
    data = dict(payload)
    stamps = data.pop(STAMPS_KEY, None)
    stamps = dict(stamps) if isinstance(stamps, dict) else {}
    for legacy, name in LEGACY_KEYS.items():
        if legacy in data:
            stamps.setdefault(name, data.pop(legacy))
    return data, stamps


def join(data: dict[str, Any], stamps: dict[str, Any]) -> dict[str, Any]:
    """Return what is stored for a session: its data and, under STAMPS_KEY, its stamps."""
    return {**data, STAMPS_KEY: stamps}


def is_stale(data: dict[str, Any], stamps: dict[str, Any], *, now: int | None = None) -> bool:
    """Return whether the session ran past its idle timeout or absolute lifetime."""
    return stale_reason(data, stamps, now=now) is not None


def stale_reason(data: dict[str, Any], stamps: dict[str, Any], *, now: int | None = None) -> str | None:
    """Return why the session is over ("idle", "lifetime"), or None while it is live."""
    now = int(time.time()) if now is None else now
    staff = stamps.get(STAFF) is True
    idle = app_settings.STAFF_IDLE_TIMEOUT if staff else app_settings.IDLE_TIMEOUT
    lifetime = app_settings.STAFF_ABSOLUTE_LIFETIME if staff else app_settings.ABSOLUTE_LIFETIME
    last_activity = stamps.get(LAST_ACTIVITY)
    if isinstance(last_activity, int) and now - last_activity > idle:
        return IDLE
    authenticated_at = stamps.get(AUTHENTICATED_AT)
    if SESSION_KEY in data and isinstance(authenticated_at, int) and now - authenticated_at > lifetime:
        return LIFETIME
    return None


def as_datetime(stamp: object) -> datetime | None:
    return datetime.fromtimestamp(stamp, tz=UTC) if isinstance(stamp, int) else None
