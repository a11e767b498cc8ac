"""Throttle failed sign-ins per username and per client address.

A small limiter on the general cache rather than django-axes: the counters live
in Redis, which every instance shares; a failure costs one INCR, a success one
DELETE, and nothing else is stored. axes would add tables, a middleware and a
database write per attempt for the same two counters. If Redis is unreachable
the limiter lets sign-ins through (and logs it) rather than lock everyone out.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.http import HttpRequest

from durable_sessions.middleware import client_ip

logger = logging.getLogger(__name__)


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.lower().encode()).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}"


def _keys(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    keys = [(_key("user", username), settings.LOGIN_FAILURES_PER_USERNAME)]
    ip = client_ip(request)
    if ip:
        keys.append((_key("ip", ip), settings.LOGIN_FAILURES_PER_ADDRESS))
    return keys


def is_throttled(request: HttpRequest, username: str) -> bool:
    """Return whether sign-ins for this username or from this address are paused."""
    keys = _keys(request, username)
    try:
        counts = cache.get_many([key for key, _ in keys])
    except Exception:
        logger.warning("login throttle unavailable; letting the attempt through", exc_info=True)
        return False
    return any(counts.get(key, 0) >= limit for key, limit in keys)


def record_failure(request: HttpRequest, username: str) -> None:
    try:
        for key, _ in _keys(request, username):
            cache.add(key, 0, settings.LOGIN_FAILURE_WINDOW)
            cache.incr(key)
    except Exception:
        logger.warning("login throttle unavailable; failure not counted", exc_info=True)


def record_success(request: HttpRequest, username: str) -> None:
    """Forget the username's failures; the address keeps its count."""
    try:
        cache.delete(_key("user", username))
    except Exception:
        logger.warning("login throttle unavailable", exc_info=True)


class ThrottledModelBackend(ModelBackend):
    """The model backend, refusing and counting failures on every sign-in path (admin too)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or not username:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if is_throttled(request, username):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(request, username)
        else:
            record_success(request, username)
        return user
