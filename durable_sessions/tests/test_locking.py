"""The lock switch exists only to measure what the lock prevents; show both sides."""

from __future__ import annotations

import pytest

from cart.cart import Cart
from durable_sessions.backends.cached_db import SessionStore

pytestmark = pytest.mark.django_db


def two_requests_change_one_session(make_product) -> dict:
    """Two requests load one session, then each adds a product (the second one last)."""
    kite, mug = make_product(), make_product()
    first = SessionStore()
    first["cart"] = {}
    first.save()
    second = SessionStore(first.session_key)
    first.get("cart"), second.get("cart")  # both load it before either changes it
    for request_session, product in ((first, kite), (second, mug)):
        with request_session.locked():
            Cart(request_session).add(product)
        if request_session.modified:
            request_session.save()  # what the middleware does after an unlocked change
    return SessionStore(first.session_key).load()["cart"]


def test_with_the_lock_both_changes_survive(make_product):
    assert len(two_requests_change_one_session(make_product)) == 2


def test_without_the_lock_a_change_is_lost(make_product, settings):
    settings.DURABLE_SESSIONS_UPDATE_LOCK = False

    assert len(two_requests_change_one_session(make_product)) == 1
