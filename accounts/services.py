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
from durable_sessions.metrics import PASSWORD
from durable_sessions.models import UserSession
from durable_sessions.services import sessions_end
from durable_sessions.stamps import split, stale_reason


def user_sessions_end(*, user: User, reason: str, keep_session_key: str | None = None) -> int:
    """End every session of ``user`` except the one stored under ``keep_session_key``, in PostgreSQL and Redis."""
    keys = (
        UserSession.objects.filter(user=user)
        .exclude(session_key=keep_session_key)
        .values_list("session_key", flat=True)
    )
    return sessions_end(keys, reason=reason)


def user_session_rows(*, user: User) -> tuple[list[tuple[UserSession, dict]], dict[str, str]]:
    """Return the user's sessions that can still sign them in (with their data), and why each of the rest cannot."""
    rows = UserSession.objects.filter(user=user, expire_date__gt=timezone.now()).order_by("-last_activity")
    expected_hash = user.get_session_auth_hash()
    live, dead = [], {}
    for row in rows:
        data = row.get_decoded()
        stale = stale_reason(*split(row.stored))
        if stale:
            dead[row.session_key] = stale
        elif not constant_time_compare(str(data.get(HASH_SESSION_KEY, "")), expected_hash):
            dead[row.session_key] = PASSWORD  # made stale by a password change
        else:
            live.append((row, data))
    return live, dead


def user_sessions_prune(dead: dict[str, str]) -> None:
    """End the sessions that can no longer sign anyone in (from ``user_session_rows``), each for its reason."""
    for reason in set(dead.values()):
        sessions_end([key for key, why in dead.items() if why == reason], reason=reason)


def user_sign_in(*, request: HttpRequest, user: User, backend: str | None = None) -> list[str]:
    """Sign ``user`` in under the session's lock, and merge baskets left in their other sessions.

    Django's login() copies the session to a new key (no fixation) and deletes
    the old one; doing it under the lock means the copy is the latest one, not
    the one this request happened to load. Returns "2 × Kite" descriptions of
    what was merged in.
    """
    live, dead = user_session_rows(user=user)
    user_sessions_prune(dead)
    others = [data.get(CART_SESSION_KEY) for _, data in live]
    with locked(request.session):
        auth_login(request, user, backend=backend)  # the session's absolute lifetime starts again
        cart = Cart(request.session)
        merged = []
        for other in others:
            merged += cart.merge(other)
    return [f"{quantity} × {product.name}" for product, quantity in merged]
