"""Throttle password checks per username and per client address.

A small limiter on the general cache rather than django-axes: the counters live
in Redis, which every instance shares; an attempt costs one INCR per counter, a
success one DELETE and one DECR, and nothing else is stored. axes would add
tables, a middleware and a database write per attempt for the same two
counters. If Redis is unreachable the limiter lets attempts through (and logs
it) rather than lock everyone out.

Every attempt is counted *before* its password is hashed, and refused if its
count is over the limit. Counting after the check let concurrent guesses all
pass the check before any of them was counted: twenty at once were twenty
password checks, not five.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.http import HttpRequest
from prometheus_client import Counter

from durable_sessions.middleware import client_ip

logger = logging.getLogger(__name__)

KEY_PREFIX = "login-failures"
signin_throttled = Counter("shop_signin_throttled", "Sign-ins refused by the throttle.")


@dataclass(frozen=True)
class Lockout:
    """Attempts for a username or from an address are refused for ``seconds`` more."""

    seconds: int

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.lower().encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{kind}:{digest}"


def _counters(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    """Return the (key, limit) of each counter an attempt counts in: the username's, the address's."""
    counters = [(_key("user", username), settings.LOGIN_FAILURES_PER_USERNAME)]
    ip = client_ip(request)
    if ip:
        counters.append((_key("ip", ip), settings.LOGIN_FAILURES_PER_ADDRESS))
    return counters


def _increment(key: str) -> int:
    """Add one to the counter, opening its window (the key's expiry) if it has none; return the count.

    Each call is one atomic command (django-redis's INCR runs only on an existing
    key, so it never leaves a counter without an expiry); a counter that exists,
    as it does after the first attempt, costs one round trip.
    """
    try:
        return cache.incr(key)
    except ValueError:  # no counter yet, or its window has just closed
        pass
    if cache.add(key, 1, settings.LOGIN_FAILURE_WINDOW):
        return 1
    return cache.incr(key)  # another attempt opened the window between the two calls


def attempt_count(request: HttpRequest, username: str) -> bool:
    """Count an attempt at ``username``'s password; return whether the password may be checked."""
    counters = _counters(request, username)
    try:
        counts = [_increment(key) for key, _ in counters]
    except Exception:
        logger.warning("login throttle unavailable; letting the attempt through", exc_info=True)
        return True
    allowed = all(count <= limit for count, (_, limit) in zip(counts, counters, strict=True))
    if not allowed:
        signin_throttled.inc()
    return allowed


def attempt_succeeded(request: HttpRequest, username: str) -> None:
    """Forget the username's attempts; the address keeps its failures (this attempt is taken back).

    Taking the success back keeps the address's counter a count of failures, so
    that many people signing in from behind one address (an office, a mobile
    carrier's NAT) do not lock each other out.
    """
    (user_key, _), *address = _counters(request, username)
    try:
        cache.delete(user_key)
        for key, _ in address:
            cache.decr(key)
    except ValueError:  # the address's window closed meanwhile: nothing to take back
        pass
    except Exception:
        logger.warning("login throttle unavailable; success not recorded", exc_info=True)


def _seconds_left(key: str) -> int:
    # django-redis reads the key's expiry; the in-process cache of the embedded
    # default has no such call, and the whole window is the most it can be.
    ttl = getattr(cache, "ttl", None)
    if ttl is None:
        return settings.LOGIN_FAILURE_WINDOW
    seconds = ttl(key)
    return settings.LOGIN_FAILURE_WINDOW if seconds is None else seconds


def lockout(request: HttpRequest, username: str) -> Lockout | None:
    """Return how long attempts for this username or from this address stay refused, or None if they are not."""
    counters = _counters(request, username)
    try:
        counts = cache.get_many([key for key, _ in counters])
        seconds = [_seconds_left(key) for key, limit in counters if counts.get(key, 0) >= limit]
    except Exception:
        logger.warning("login throttle unavailable", exc_info=True)
        return None
    seconds = [s for s in seconds if s > 0]
    return Lockout(seconds=max(seconds)) if seconds else None


class ThrottledModelBackend(ModelBackend):
    """The model backend, counting every sign-in attempt before it checks the password (admin too)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or not username or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if not attempt_count(request, username):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            attempt_succeeded(request, username)
        return user
