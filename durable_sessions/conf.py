"""Read the session tier's settings: each under the DURABLE_SESSIONS_ prefix, with its default here once."""

from __future__ import annotations

from typing import Any

from django.conf import settings

PREFIX = "DURABLE_SESSIONS_"
# The user agent kept per session (and its column's length).
USER_AGENT_MAX_LENGTH = 400

DEFAULTS: dict[str, Any] = {
    # A session ends after this many seconds without activity; activity slides it.
    "IDLE_TIMEOUT": 14 * 24 * 3600,
    # A signed-in session ends this many seconds after sign-in, however active.
    "ABSOLUTE_LIFETIME": 30 * 24 * 3600,
    # A member of staff's session ends sooner: after this long idle, and this
    # long after sign-in (seconds).
    "STAFF_IDLE_TIMEOUT": 2 * 3600,
    "STAFF_ABSOLUTE_LIFETIME": 12 * 3600,
    # Activity is written at most this often (seconds): reads in between write nothing.
    "ACTIVITY_INTERVAL": 300,
    # Change a session under its row lock. False only to measure what the lock prevents.
    "UPDATE_LOCK": True,
    # At most this many changes to one session run (wait for its lock) at once in a
    # process; more are refused (SessionBusy, a 429), so a hot session leaves the
    # other threads to other shoppers. The database's lock_timeout bounds the wait too.
    "LOCK_WAITERS": 2,
    # The circuit breaker opens after this many consecutive Redis failures and
    # lets one request probe Redis this often (seconds).
    "BREAKER_FAIL_MAX": 3,
    "BREAKER_RESET_TIMEOUT": 2.0,
    # The session cookie's name before SESSION_COOKIE_NAME changed (to a
    # __Host- name, say): a session it names moves to the new cookie on its
    # next request instead of being lost. Empty: no previous name.
    "PREVIOUS_COOKIE_NAME": "",
    # How often each process looks at the journal of keys Redis missed (seconds; 0: never).
    "JOURNAL_POLL_INTERVAL": 0.5,
    # With a replicated Redis (Sentinel), a session write counts once this many
    # replicas acknowledge it within this many milliseconds (WAIT).
    "REPLICA_ACKS": 1,
    "REPLICA_ACK_TIMEOUT": 100,
}


class AppSettings:
    """The tier's settings, read from Django's settings at each access (tests override them)."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"{PREFIX}{name} is not a setting of the session tier")
        return getattr(settings, PREFIX + name, DEFAULTS[name])


app_settings = AppSettings()
