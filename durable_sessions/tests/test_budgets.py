"""What a request may cost: SQL queries and Redis round trips, counted on real servers."""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cart.cart import CART_SESSION_KEY, Cart
from config.caches import build_caches
from durable_sessions.backends.cached_db import SessionStore
from durable_sessions.stamps import LAST_ACTIVITY
from harness.testing import session_backdate, session_cache_key, session_row

pytestmark = pytest.mark.django_db
WRITES = {"set", "setex", "psetex", "del", "unlink", "expire", "pexpire", "mset", "hset"}


class RedisCounter:
    """Counts the commands a Redis server ran, from its own statistics."""

    def __init__(self, server) -> None:
        self.server = server

    def reset(self) -> None:
        self.server.cli("CONFIG", "RESETSTAT")

    def calls(self) -> dict[str, int]:
        stats = self.server.cli("INFO", "commandstats")
        counted = {m[0]: int(m[1]) for m in re.findall(r"cmdstat_(\w+):calls=(\d+)", stats)}
        # The counting itself (INFO, CONFIG) is not the shop's.
        return {name: n for name, n in counted.items() if name not in ("info", "config")}


@pytest.fixture
def shop_on_private_redis(redis_server):
    with override_settings(CACHES=build_caches(redis_server.url)):
        yield RedisCounter(redis_server)


@pytest.fixture
def warm_basket(client, make_product, shop_on_private_redis):
    """An anonymous shopper with a 5-line basket, session and products in Redis."""
    products = [make_product() for _ in range(5)]
    for product in products:
        client.post(f"/cart/add/{product.pk}/")
    client.get("/cart/")  # products cached
    return client


def sql_and_redis(client, counter: RedisCounter, path: str) -> tuple[list[str], dict[str, int]]:
    counter.reset()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in queries.captured_queries], counter.calls()


def test_warm_cart_page_runs_no_sql_and_two_redis_round_trips(warm_basket, shop_on_private_redis):
    sql, redis = sql_and_redis(warm_basket, shop_on_private_redis, "/cart/")

    assert sql == []
    assert redis == {"get": 1, "mget": 1}  # the session, then the basket's products


@pytest.mark.parametrize("path", ["/", "/?page=2", "/category/garden/", "/search/?q=product"])
def test_warm_list_page_runs_no_sql_and_two_redis_round_trips(warm_basket, shop_on_private_redis, make_product, path):
    for _ in range(30):
        make_product()
    warm_basket.get(path)

    sql, redis = sql_and_redis(warm_basket, shop_on_private_redis, path)

    assert sql == []
    # The session; the generations, categories, count and page.
    assert redis == {"get": 1, "mget": 1}


def test_warm_session_is_read_with_one_redis_round_trip_and_no_sql(warm_basket, shop_on_private_redis):
    sql, redis = sql_and_redis(warm_basket, shop_on_private_redis, "/accounts/me.json")

    assert sql == []
    assert redis == {"get": 1}


def test_a_request_that_changes_nothing_writes_nothing(warm_basket, shop_on_private_redis):
    for path in ("/cart/", "/cart/summary.json", "/", "/accounts/me.json"):
        warm_basket.get(path)  # what a page keeps in the general cache, it keeps on its first view
        sql, redis = sql_and_redis(warm_basket, shop_on_private_redis, path)

        assert not [q for q in sql if re.match(r"\s*(UPDATE|INSERT|DELETE)", q)], path
        assert not WRITES & set(redis), (path, redis)


def test_activity_is_written_once_per_interval(warm_basket, shop_on_private_redis, settings):
    key = warm_basket.session.session_key
    session_backdate(key, **{LAST_ACTIVITY: int(time.time()) - settings.DURABLE_SESSIONS_ACTIVITY_INTERVAL - 1})

    sql, redis = sql_and_redis(warm_basket, shop_on_private_redis, "/cart/summary.json")
    updates = [q for q in sql if q.lstrip().startswith("UPDATE") and "accounts_usersession" in q]
    assert len(updates) == 1 and redis.get("set", 0) + redis.get("setex", 0) == 1

    sql, redis = sql_and_redis(warm_basket, shop_on_private_redis, "/cart/summary.json")
    assert not [q for q in sql if q.lstrip().startswith("UPDATE")]
    assert not WRITES & set(redis)


def test_a_basket_of_100_lines_stays_under_8_kb(make_product, shop_on_private_redis, redis_server):
    store = SessionStore()
    cart = Cart(store)
    for _ in range(100):
        cart.add(make_product(stock=99), quantity=99)
    store.save()

    assert len(store[CART_SESSION_KEY]) == 100
    in_redis = int(redis_server.cli("-n", "1", "STRLEN", f":1:{session_cache_key(store.session_key)}"))
    in_postgres = len(session_row(store.session_key).session_data)
    assert 0 < in_redis < 8192 and in_postgres < 8192, (in_redis, in_postgres)


def test_a_change_to_the_basket_costs_one_lock_and_one_update(warm_basket, shop_on_private_redis, make_product):
    """Adding a line: the product, the session row locked, the row updated; no savepoint, one Redis write."""
    product = make_product()
    shop_on_private_redis.reset()
    with CaptureQueriesContext(connection) as queries:
        assert warm_basket.post(f"/cart/add/{product.pk}/").status_code == 302
    sql = [q["sql"].lstrip().split()[0] for q in queries.captured_queries]
    session_sql = [q["sql"] for q in queries.captured_queries if "accounts_usersession" in q["sql"]]

    assert sql.count("SAVEPOINT") == 0 and sql.count("RELEASE") == 0
    assert len(session_sql) == 2
    assert session_sql[0].lstrip().startswith("SELECT") and session_sql[0].rstrip().endswith("FOR UPDATE")
    assert session_sql[1].lstrip().startswith("UPDATE")
    assert shop_on_private_redis.calls() == {"set": 1}  # one round trip to Redis: no read first
    # The written-out UPDATE stores what Model.save would: the data and its columns.
    row = session_row(warm_basket.session.session_key)
    assert row.get_decoded()[CART_SESSION_KEY][str(product.pk)]["quantity"] == 1
    assert row.ip_address == "127.0.0.1" and row.created_at and row.last_activity
    assert row.expire_date > timezone.now()
