"""Change accounts and their sessions."""

from __future__ import annotations

from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.auth import login as auth_login
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import User
from cart.cart import CART_SESSION_KEY, Cart
from durable_sessions.backends.cached_db import locked
from durable_sessions.models import UserSession
from durable_sessions.services import sessions_end


def user_sessions_end(*, user: User, keep_session_key: str | None = None) -> int:
    """End every session of ``user`` except the one stored under ``keep_session_key``, in PostgreSQL and Redis."""
    keys = (
        UserSession.objects.filter(user=user)
        .exclude(session_key=keep_session_key)
        .values_list("session_key", flat=True)
    )
    return sessions_end(keys)


def user_session_rows(*, user: User) -> tuple[list[tuple[UserSession, dict]], list[str]]:
    """Return the user's sessions that can still sign them in (with their data), and the rest's keys."""
    rows = UserSession.objects.filter(user=user, expire_date__gt=timezone.now()).order_by("-last_activity")
    expected_hash = user.get_session_auth_hash()
    live, dead = [], []
    for row in rows:
        data = row.get_decoded()
        if row.is_stale() or not constant_time_compare(str(data.get(HASH_SESSION_KEY, "")), expected_hash):
            dead.append(row.session_key)  # expired, or made stale by a password change
        else:
            live.append((row, data))
    return live, dead


def user_sign_in(*, request: HttpRequest, user: User, backend: str | None = None) -> list[str]:
    """Sign ``user`` in under the session's lock, and merge baskets left in their other sessions.

    Django's login() copies the session to a new key (no fixation) and deletes
    the old one; doing it under the lock means the copy is the latest one, not
    the one this request happened to load. Returns "2 × Kite" descriptions of
    what was merged in.
    """
    live, dead = user_session_rows(user=user)
    sessions_end(dead)
    others = [data.get(CART_SESSION_KEY) for _, data in live]
    with locked(request.session):
        auth_login(request, user, backend=backend)  # the session's absolute lifetime starts again
        cart = Cart(request.session)
        merged = []
        for other in others:
            merged += cart.merge(other)
    return [f"{quantity} × {product.name}" for product, quantity in merged]
