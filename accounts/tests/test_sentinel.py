"""The session cache under Redis Sentinel, on a private primary, replica and three sentinels."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.cache import caches
from django.test import Client, override_settings

from accounts.cache import OPEN, ReplicatedClient
from accounts.models import SessionCacheJournal
from accounts.tests.test_cache import lines, wait_until
from config.caches import SESSION_CACHE_ALIAS, Sentinel, build_caches
from harness.sentinel import MASTER, SentinelGroup


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    group = SentinelGroup().start()
    try:
        yield group
    finally:
        group.stop()


def sentinel_caches(group: SentinelGroup, **sentinel) -> dict:
    config = Sentinel.parse(group.hosts.split(","), MASTER, sentinel.get("replica_acks", 1), 100)
    built = build_caches("", sentinel=config)
    built[SESSION_CACHE_ALIAS]["OPTIONS"]["BREAKER_RESET_TIMEOUT"] = 0.2
    return built


def direct(port: int, db: int = 1) -> redis.Redis:
    return redis.Redis(port=port, db=db, socket_timeout=1)


def redis_key(session_key: str) -> str:
    return f":1:{KEY_PREFIX}{session_key}"


@pytest.fixture
def paused_replica(group):
    group.replica.process.send_signal(signal.SIGSTOP)
    try:
        yield group.replica
    finally:
        group.replica.process.send_signal(signal.SIGCONT)


def test_sessions_are_written_through_the_primary_and_held_by_the_replica(group, db, make_product):
    product = make_product()
    with override_settings(CACHES=sentinel_caches(group)):
        client = Client()
        client.post(f"/cart/add/{product.pk}/", {"quantity": "2"})
        key = client.cookies["sessionid"].value

        assert isinstance(caches[SESSION_CACHE_ALIAS].client, ReplicatedClient)
        # WAIT returned: the replica holds the write the moment the request ends.
        assert direct(group.primary.port).exists(redis_key(key))
        assert direct(group.replica.port).get(redis_key(key)) == direct(group.primary.port).get(redis_key(key))
        assert lines(client) == {str(product.pk): 2}


def test_reads_come_from_the_primary_even_when_the_replica_lags(group, db, make_product, paused_replica):
    """Read-your-writes across instances: a replica that lags (here: frozen) is never read."""
    product = make_product()
    with override_settings(CACHES=sentinel_caches(group, replica_acks=0)):
        writer = Client()
        writer.post(f"/cart/add/{product.pk}/", {"quantity": "3"})
        key = writer.cookies["sessionid"].value

        # A cache object of its own, as another instance would have: it asks
        # the sentinels where to read. A read sent to the frozen replica would
        # time out and count as a failure.
        other_instance = caches.create_connection(SESSION_CACHE_ALIAS)
        session = other_instance.get(KEY_PREFIX + key)

        assert session is not None and session["cart"][str(product.pk)]["quantity"] == 3
        assert other_instance.breaker.allows()


def test_a_write_no_replica_acknowledged_is_journaled_not_trusted(group, db, make_product, paused_replica):
    product = make_product()
    with override_settings(CACHES=sentinel_caches(group)):
        client = Client()
        response = client.post(f"/cart/add/{product.pk}/", {"quantity": "1"})
        key = client.cookies["sessionid"].value
        cache = caches[SESSION_CACHE_ALIAS]

        assert response.status_code == 302  # PostgreSQL has it; the shopper sees no error
        assert SessionCacheJournal.objects.filter(cache_key=KEY_PREFIX + key).exists()
        assert cache.breaker.state == OPEN
        assert lines(client) == {str(product.pk): 1}  # served from PostgreSQL meanwhile

        group.replica.process.send_signal(signal.SIGCONT)
        group.wait_replicated(group.replica)
        wait_until(lambda: lines(client) == {str(product.pk): 1} and cache.breaker.allows())

        assert not SessionCacheJournal.objects.exists()
