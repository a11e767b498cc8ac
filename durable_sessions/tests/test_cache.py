"""The session cache's breaker and journal, against real Redis servers this test controls."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings

from config.caches import SESSION_CACHE_ALIAS, build_caches
from durable_sessions.cache.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from durable_sessions.cache.journal import JournalWatcher
from durable_sessions.models import SessionCacheJournal
from harness.load.shopper import Shopper
from harness.servers.backing import free_port
from harness.servers.shop import ShopServer, production_env
from harness.testing import basket_lines as lines
from harness.testing import session_cache_key, session_row, sign_in, wait_until

# A breaker that probes Redis quickly: the tests wait for it to close again.
pytestmark = pytest.mark.usefixtures("quick_probes")


def session_cache():
    from django.core.cache import caches

    return caches[SESSION_CACHE_ALIAS]


# --- The breaker on its own ---------------------------------------------------------------
def test_breaker_opens_after_consecutive_failures_only():
    breaker = Breaker(fail_max=3, reset_timeout=60)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED

    breaker.record_failure()

    assert breaker.state == OPEN and not breaker.allows()


def test_one_probe_at_a_time_and_only_when_due():
    breaker = Breaker(fail_max=1, reset_timeout=60)
    breaker.record_failure()
    assert not breaker.start_probe()  # not due yet

    breaker.trip(probe_now=True)  # already open: stays as it is
    breaker = Breaker(fail_max=1, reset_timeout=60)
    breaker.trip(probe_now=True)
    assert breaker.start_probe()
    assert not breaker.start_probe()  # someone is probing
    breaker.end_probe(healthy=False)
    assert breaker.state == OPEN and not breaker.start_probe()  # the timer starts again

    breaker.trip(probe_now=True)
    breaker._opened_at -= 60
    assert breaker.start_probe()
    breaker.end_probe(healthy=True)
    assert breaker.state == CLOSED


def test_a_key_journaled_elsewhere_during_a_probe_keeps_the_breaker_open():
    breaker = Breaker(fail_max=1, reset_timeout=60)
    breaker.trip(probe_now=True)
    assert breaker.start_probe()
    breaker.reached()
    breaker.trip(probe_now=True, notified=True)  # the watcher hears another process journal a key

    breaker.end_probe(healthy=True)  # this probe found the journal empty before that key

    assert breaker.state != CLOSED and not breaker.allows()
    breaker._opened_at -= 60
    assert breaker.start_probe()
    breaker.end_probe(healthy=True)  # the next probe replayed it
    assert breaker.state == CLOSED


# --- Against a real, paused Redis ---------------------------------------------------------------
@pytest.mark.django_db
def test_an_open_breaker_stops_requests_paying_for_redis(client, make_product, redis_server, caplog, settings):
    product = make_product()
    settings.DURABLE_SESSIONS_BREAKER_RESET_TIMEOUT = 60
    with override_settings(CACHES=build_caches(redis_server.url)):
        client.post(f"/cart/add/{product.pk}/")
        redis_server.pause()
        try:
            with caplog.at_level(logging.WARNING, logger="durable_sessions.cache"):
                for _ in range(8):
                    assert lines(client) == {str(product.pk): 1}  # served from PostgreSQL
        finally:
            redis_server.resume()

    assert caplog.text.count("session cache call failed") == 3  # then the breaker opened
    assert "breaker opened" in caplog.text


@pytest.mark.django_db
def test_nothing_changed_while_redis_was_paused_comes_back(client, ada, make_product, redis_server):
    kite, mug = make_product(name="Kite"), make_product(name="Mug")
    with override_settings(CACHES=build_caches(redis_server.url)):
        client.post(f"/cart/add/{kite.pk}/")
        phone = Client()
        sign_in(phone)
        old_phone_cookie = phone.cookies["sessionid"].value
        assert lines(client) == {str(kite.pk): 1}  # Redis holds these copies

        redis_server.pause()
        try:
            client.post(f"/cart/add/{mug.pk}/")  # PostgreSQL gets it; Redis cannot
            client.post(f"/cart/update/{kite.pk}/", {"quantity": "3"})
            phone.post("/accounts/logout/")  # the row goes; the Redis copy cannot
            assert SessionCacheJournal.objects.exists()
        finally:
            redis_server.resume()
        # The next probe replays the journal and closes the breaker.
        wait_until(lambda: lines(client) == {str(kite.pk): 3, str(mug.pk): 1} and session_cache().breaker.allows())

        stale_phone = Client()
        stale_phone.cookies["sessionid"] = old_phone_cookie
        assert stale_phone.get("/accounts/me.json").json()["authenticated"] is False
        assert not SessionCacheJournal.objects.exists()
        key = client.cookies["sessionid"].value
        assert redis_server.cli("-n", "1", "EXISTS", f":1:{session_cache_key(key)}") == "1"  # cached again


def partition_caches(redis_url: str, backend: str | None = None) -> tuple[dict, dict]:
    """CACHES reaching Redis, and CACHES cut off from it (a dead port) while it keeps its data."""
    reachable, cut_off = build_caches(redis_url), build_caches(f"redis://127.0.0.1:{free_port()}/0")
    for caches in (reachable, cut_off) if backend else ():
        caches[SESSION_CACHE_ALIAS]["BACKEND"] = backend
        caches[SESSION_CACHE_ALIAS]["OPTIONS"]["IGNORE_EXCEPTIONS"] = True
    return reachable, cut_off


@pytest.mark.django_db
def test_stock_cached_db_serves_the_stale_copy_after_a_partition(client, make_product, redis_server):
    """Why the journal exists: django-redis ignoring errors drops the failed write."""
    kite, mug = make_product(name="Kite"), make_product(name="Mug")
    reachable, cut_off = partition_caches(redis_server.url, backend="django_redis.cache.RedisCache")
    with override_settings(CACHES=reachable):
        client.post(f"/cart/add/{kite.pk}/")
        assert lines(client) == {str(kite.pk): 1}
    with override_settings(CACHES=cut_off):
        client.post(f"/cart/add/{mug.pk}/")

    with override_settings(CACHES=reachable):
        key = client.cookies["sessionid"].value
        assert set(session_row(key).get_decoded()["cart"]) == {str(kite.pk), str(mug.pk)}
        assert lines(client) == {str(kite.pk): 1}  # the mug is gone from what the shopper sees


@pytest.mark.django_db
def test_the_journal_repairs_what_a_partition_left_stale(client, make_product, redis_server):
    kite, mug = make_product(name="Kite"), make_product(name="Mug")
    reachable, cut_off = partition_caches(redis_server.url)
    with override_settings(CACHES=reachable):
        client.post(f"/cart/add/{kite.pk}/")
        assert lines(client) == {str(kite.pk): 1}
    with override_settings(CACHES=cut_off):
        client.post(f"/cart/add/{mug.pk}/")
    assert SessionCacheJournal.objects.count() == 1

    with override_settings(CACHES=reachable):
        JournalWatcher(session_cache().breaker, interval=0).check()  # what every process does
        assert not session_cache().breaker.allows()

        wait_until(lambda: lines(client) == {str(kite.pk): 1, str(mug.pk): 1} and session_cache().breaker.allows())
        assert not SessionCacheJournal.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_instance_that_never_saw_the_outage_serves_no_stale_copy(
    test_database_url, collected_static, redis_server, make_product
):
    kite, mug = make_product(name="Kite", stock=50), make_product(name="Mug", stock=50)
    env = production_env(DATABASE_URL=test_database_url, REDIS_URL=redis_server.url)
    first, second = ShopServer(env, workers=1).start(), ShopServer(env, workers=1).start()
    try:
        on_first = Shopper(first.url)
        on_first.add(kite.pk)
        on_second = Shopper(second.url)
        on_second.http.cookies.update(on_first.http.cookies)
        assert on_second.basket() == {str(kite.pk): 1}  # the second instance reads Redis

        redis_server.pause()
        try:
            assert on_first.add(mug.pk).status_code == 302  # journaled by the first instance
            wait_until(lambda: SessionCacheJournal.objects.exists())
            # The second instance's watcher hears of the journal and opens its breaker.
            wait_until(lambda: on_second.get("/readyz").json()["breaker"] == "open")
        finally:
            redis_server.resume()

        assert on_second.basket() == {str(kite.pk): 1, str(mug.pk): 1}
        assert on_second.get("/readyz").json()["breaker"] == "closed"
    finally:
        first.stop()
        second.stop()


def test_a_probe_never_closes_the_breaker_over_a_failure_during_it():
    breaker = Breaker(fail_max=1, reset_timeout=0)
    breaker.record_failure()
    assert breaker.start_probe()

    breaker.trip(probe_now=True)  # the watcher: the journal being replayed is not new
    breaker.end_probe(healthy=True)
    assert breaker.state == CLOSED

    breaker.record_failure()
    breaker._opened_at -= 60
    assert breaker.start_probe()
    breaker.trip()  # another thread journaled a key while the probe ran
    breaker.end_probe(healthy=True)

    assert breaker.state == OPEN
    assert breaker.start_probe()
    breaker.end_probe(healthy=True)
    assert breaker.state == CLOSED


def test_half_open_lets_writes_through_while_reads_wait_for_the_journal():
    breaker = Breaker(fail_max=1, reset_timeout=0)
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allows_writes()

    assert breaker.start_probe()
    breaker.reached()  # the probe's PING answered
    assert breaker.state == HALF_OPEN
    assert breaker.allows_writes() and not breaker.allows()  # reads wait for the journal to be empty
    breaker.end_probe(healthy=False)  # another process's journal rows are still there
    assert breaker.state == HALF_OPEN

    assert breaker.start_probe()
    breaker.record_failure()  # a write failed while half-open
    assert breaker.state == OPEN and not breaker.allows_writes()
    breaker.end_probe(healthy=True)  # the probe began before that failure: it closes nothing
    assert breaker.state == OPEN

    assert breaker.start_probe()
    breaker.reached()
    breaker.end_probe(healthy=True)
    assert breaker.state == CLOSED and breaker.allows()
