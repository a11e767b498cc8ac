"""The session store: metadata, timeouts, the write budget, and ending sessions everywhere."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from durable_sessions.backends.cached_db import Client as SessionClient
from durable_sessions.backends.cached_db import SessionStore
from durable_sessions.metrics import REVOKED
from durable_sessions.models import UserSession
from durable_sessions.sealing import storage_key
from durable_sessions.services import sessions_end
from durable_sessions.stamps import AUTHENTICATED_AT, LAST_ACTIVITY, STAMPS_KEY, is_ended
from harness.testing import session_backdate as backdate
from harness.testing import session_cache_key, session_cache_put, session_cached, session_row, sign_in

pytestmark = pytest.mark.django_db
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def session_cache():
    return caches["sessions"]


def in_redis(key: str) -> bool:
    """Whether Redis holds a live copy (an ended session leaves a tombstone)."""
    value = session_cached(key)
    return value is not None and not is_ended(value)


def test_save_records_user_client_and_times(ada):
    store = SessionStore(client=SessionClient(ip_address="203.0.113.9", user_agent=UA))
    store["_auth_user_id"] = str(ada.pk)
    store.save()

    row = session_row(store.session_key)
    assert (row.user, row.ip_address, row.user_agent) == (ada, "203.0.113.9", UA)
    assert row.created_at and row.last_activity and row.authenticated_at
    assert in_redis(store.session_key)


def test_async_save_records_the_same_metadata(ada):
    store = SessionStore(client=SessionClient(ip_address="2001:db8::1", user_agent=UA))
    store["_auth_user_id"] = str(ada.pk)
    async_to_sync(store.asave)()

    row = session_row(store.session_key)
    assert (row.user, row.ip_address, row.user_agent) == (ada, "2001:db8::1", UA)
    assert row.created_at and row.last_activity and row.authenticated_at
    loaded = SessionStore(store.session_key)
    assert async_to_sync(loaded.aload)()["_auth_user_id"] == str(ada.pk)


def test_cycle_key_keeps_data_and_removes_the_old_key_everywhere():
    store = SessionStore()
    store["cart"] = {"1": {"quantity": 2, "price": "1.00"}}
    store.save()
    old = store.session_key

    store.cycle_key()

    assert store.session_key != old and store["cart"]["1"]["quantity"] == 2
    assert session_row(old) is None and not in_redis(old)
    assert not store.exists(old) and store.exists(store.session_key)


def test_idle_session_ends_on_its_next_load():
    store = SessionStore()
    store["cart"] = {}
    store.save()
    backdate(store.session_key, **{LAST_ACTIVITY: int(time.time()) - 15 * 24 * 3600})

    assert SessionStore(store.session_key).load() == {}
    assert session_row(store.session_key) is None
    assert not in_redis(store.session_key)


def test_a_session_emptied_of_data_still_times_out():
    store = SessionStore()
    store["cart"] = {"1": {"quantity": 1, "price": "1.00"}}
    store.save()
    del store["cart"]
    store.save()  # a row with no data left, only the tier's stamps
    backdate(store.session_key, **{LAST_ACTIVITY: int(time.time()) - 15 * 24 * 3600})

    assert SessionStore(store.session_key).load() == {}
    assert session_row(store.session_key) is None


def test_the_tiers_stamps_are_not_session_keys(ada):
    store = SessionStore(client=SessionClient(ip_address="203.0.113.9", user_agent=UA))
    store["_auth_user_id"] = str(ada.pk)
    store["cart"] = {}
    store.save()

    loaded = SessionStore(store.session_key)
    assert sorted(loaded.keys()) == ["_auth_user_id", "cart"] and len(loaded.items()) == 2
    assert set(session_row(store.session_key).stored[STAMPS_KEY]) == {
        "created_at",
        "last_activity",
        "authenticated_at",
        "ip",
        "user_agent",
    }
    assert set(session_cached(store.session_key)) == {"_auth_user_id", "cart", STAMPS_KEY}


def test_absolute_lifetime_ends_a_signed_in_session_however_active(client, ada, settings):
    sign_in(client)
    key = client.session.session_key
    backdate(key, **{AUTHENTICATED_AT: int(time.time()) - settings.DURABLE_SESSIONS_ABSOLUTE_LIFETIME - 1})

    assert client.get("/accounts/me.json").json() == {"authenticated": False, "username": None}
    assert session_row(key) is None


def test_warm_request_reads_redis_and_writes_nothing(client, ada):
    sign_in(client)
    client.get("/accounts/me.json")  # settle: stamps written
    key = client.session.session_key
    before = session_row(key)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/cart/summary.json")

    session_sql = [q["sql"] for q in queries.captured_queries if "accounts_usersession" in q["sql"]]
    assert session_sql == []
    assert "sessionid" not in response.cookies  # nothing saved, no cookie sent
    assert session_row(key).session_data == before.session_data


def test_activity_is_stamped_once_the_interval_passed_and_the_expiry_slides(client, ada, settings):
    sign_in(client)
    key = client.session.session_key
    old = int(time.time()) - settings.DURABLE_SESSIONS_ACTIVITY_INTERVAL - 5
    backdate(key, **{LAST_ACTIVITY: old})
    expiry_before = session_row(key).expire_date

    response = client.get("/cart/summary.json")

    row = session_row(key)
    assert row.last_activity.timestamp() > old + 5
    assert row.expire_date >= expiry_before
    assert response.cookies["sessionid"]["max-age"] == settings.DURABLE_SESSIONS_IDLE_TIMEOUT
    assert session_cached(key)[STAMPS_KEY][LAST_ACTIVITY] > old


def test_sessions_end_makes_the_next_request_anonymous(client, ada):
    sign_in(client)
    key = client.session.session_key
    assert client.get("/accounts/me.json").json()["authenticated"] is True

    assert sessions_end([storage_key(key)], reason=REVOKED) == 1

    assert not in_redis(key)
    assert client.get("/accounts/me.json").json()["authenticated"] is False


def test_clear_expired_removes_rows_and_cache_entries(ada, settings):
    stale, fresh = SessionStore(), SessionStore()
    for store in (stale, fresh):
        store["_auth_user_id"] = str(ada.pk)
        store.save()
    lifetime = settings.DURABLE_SESSIONS_ABSOLUTE_LIFETIME
    backdate(stale.session_key, **{AUTHENTICATED_AT: int(time.time()) - lifetime - 60})

    SessionStore.clear_expired()

    assert list(UserSession.objects.values_list("session_key", flat=True)) == [storage_key(fresh.session_key)]
    assert not in_redis(stale.session_key) and in_redis(fresh.session_key)


@pytest.mark.parametrize(
    ("header", "meta", "expected"),
    [
        ("", {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "6.6.6.6"}, "198.51.100.7"),
        ("X-Forwarded-For", {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.5"}, "203.0.113.5"),
        ("X-Forwarded-For", {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "not-an-ip"}, "10.0.0.2"),
    ],
)
def test_client_ip_honours_only_the_configured_proxy_header(settings, header, meta, expected):
    from django.test import RequestFactory

    from durable_sessions.middleware import client_ip

    settings.CLIENT_IP_HEADER = header
    request = RequestFactory().get("/", **meta)

    assert client_ip(request) == expected


def test_middleware_records_ip_and_user_agent(make_product):
    product = make_product()
    visitor = Client(HTTP_USER_AGENT=UA, REMOTE_ADDR="192.0.2.44")

    visitor.post(f"/cart/add/{product.pk}/")

    row = session_row(visitor.session.session_key)
    assert (row.ip_address, row.user_agent, row.user) == ("192.0.2.44", UA, None)


def test_sign_in_copies_the_durable_basket_not_the_one_this_request_loaded(client, ada, make_product):
    a, b = make_product(), make_product()
    client.post(f"/cart/add/{a.pk}/")
    key = client.session.session_key
    # Another instance added B; its Redis write failed, so only PostgreSQL has it.
    row = session_row(key)
    data = row.get_decoded()
    data["cart"][str(b.pk)] = {"quantity": 1, "price": "9.99"}
    UserSession.objects.filter(session_key=storage_key(key)).update(session_data=SessionStore().encode(data))

    sign_in(client)

    assert set(client.get("/cart/summary.json").json()["lines"]) == {str(a.pk), str(b.pk)}


def test_a_miss_never_overwrites_a_newer_cached_copy():
    store = SessionStore()
    store["cart"] = {"1": {"quantity": 1, "price": "1.00"}}
    store.save()
    key = store.session_key
    session_cache().delete(session_cache_key(key))
    newer = {"cart": {"1": {"quantity": 2, "price": "1.00"}}}

    class ReaderRacingAWriter(SessionStore):
        def _get_session_from_db(self):
            row = super()._get_session_from_db()
            session_cache_put(key, newer, 60)  # a writer saves meanwhile
            return row

    ReaderRacingAWriter(key).load()

    assert session_cached(key) == newer


def test_a_reader_racing_an_end_cannot_bring_the_session_back(ada):
    store = SessionStore()
    store["_auth_user_id"] = str(ada.pk)
    store.save()
    key = store.session_key
    session_cache().delete(session_cache_key(key))  # a miss: the next reader re-caches from PostgreSQL

    class ReaderRacingAnEnd(SessionStore):
        def _get_session_from_db(self):
            row = super()._get_session_from_db()
            sessions_end([storage_key(key)], reason=REVOKED)  # revoked between this read and the re-cache
            return row

    ReaderRacingAnEnd(key).load()

    assert is_ended(session_cached(key))
    assert SessionStore(key).load() == {}


def test_changes_under_the_lock_reach_redis_before_commit(client, make_product):
    from django.db import transaction

    from cart.cart import Cart

    kite = make_product()
    client.post(f"/cart/add/{kite.pk}/")
    key = client.session.session_key
    store = SessionStore(key)
    store.get("cart")

    with transaction.atomic():
        with store.locked():
            Cart(store).add(kite)
        # Still inside the transaction: the write is ordered by the row lock,
        # before any end of this session can write its tombstone.
        assert session_cached(key)["cart"][str(kite.pk)]["quantity"] == 2
    sessions_end([storage_key(key)], reason=REVOKED)

    assert is_ended(session_cached(key))
