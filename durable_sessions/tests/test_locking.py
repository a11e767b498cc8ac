"""The lock: what it prevents (the switch exists only to show it), and how long a change may wait for it."""

from __future__ import annotations

import psycopg
import pytest

from cart.cart import Cart
from durable_sessions.backends.cached_db import SessionStore
from durable_sessions.locking import admitted
from harness.testing import basket_lines, session_row

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


# --- The wait for one session's lock is bounded ------------------------------------------------
def busy_delta():
    from prometheus_client import REGISTRY

    start = REGISTRY.get_sample_value("shop_session_lock_busy_total") or 0
    return lambda: (REGISTRY.get_sample_value("shop_session_lock_busy_total") or 0) - start


def test_a_change_beyond_the_waiters_allowed_here_gets_a_fast_429_and_changes_nothing(client, make_product, settings):
    settings.DURABLE_SESSIONS_LOCK_WAITERS = 2
    kite, mug = make_product(name="Kite"), make_product(name="Mug")
    client.post(f"/cart/add/{kite.pk}/")
    key = session_row(client.cookies["sessionid"].value).session_key
    busy = busy_delta()

    with admitted(key, limit=2), admitted(key, limit=2):  # two changes of this session wait here already
        refused = client.post(f"/cart/add/{mug.pk}/")
        page = client.get(kite.get_absolute_url())  # recording it as recently viewed waits too: skipped

    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert "Nothing was changed" in refused.content.decode()
    assert page.status_code == 200
    assert basket_lines(client) == {str(kite.pk): 1}
    assert busy() == 2
    assert client.post(f"/cart/add/{mug.pk}/").status_code == 302  # once they are done, it goes through


def test_a_change_waiting_past_lock_timeout_gets_a_429_not_an_error(client, make_product, test_database_url):
    from django.db import connection

    kite = make_product(name="Kite")
    client.post(f"/cart/add/{kite.pk}/")
    key = session_row(client.cookies["sessionid"].value).session_key
    busy = busy_delta()
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = 300")  # this connection's, for the test: 0.3 s
    try:
        with psycopg.connect(test_database_url) as holder:  # holds the row's lock past the timeout
            holder.execute("SELECT 1 FROM accounts_usersession WHERE session_key = %s FOR UPDATE", [key])
            refused = client.post(f"/cart/add/{kite.pk}/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert basket_lines(client) == {str(kite.pk): 1}
    assert busy() == 1
