"""The session cache under Redis Sentinel, on a private primary, replica and three sentinels."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest
import redis
from django.core.cache import caches
from django.test import Client, override_settings

from config.caches import SESSION_CACHE_ALIAS, Sentinel, build_caches
from durable_sessions.cache.breaker import OPEN
from durable_sessions.cache.replication import ReplicatedClient
from durable_sessions.models import SessionCacheJournal
from durable_sessions.sealing import seal, unseal
from harness.servers.sentinel import SentinelGroup
from harness.testing import basket_lines as lines
from harness.testing import session_cache_key, wait_until

# A breaker that probes Redis quickly: the tests wait for it to close again.
pytestmark = pytest.mark.usefixtures("quick_probes")


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    group = SentinelGroup().start()
    try:
        yield group
    finally:
        group.stop()


def sentinel_caches(group: SentinelGroup, **sentinel) -> dict:
    config = Sentinel.parse(group.hosts.split(","), group.master, sentinel.get("replica_acks", 1), 100)
    return build_caches("", sentinel=config)


def direct(port: int, db: int = 1) -> redis.Redis:
    return redis.Redis(port=port, db=db, socket_timeout=1)


def redis_key(session_key: str) -> str:
    return f":1:{session_cache_key(session_key)}"


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


def test_reads_come_from_the_primary_never_from_a_replica(group, db, make_product):
    """Read-your-writes across instances: a replica holding another copy (as a lagging one would) is never read."""
    product = make_product()
    with override_settings(CACHES=sentinel_caches(group)):
        writer = Client()
        writer.post(f"/cart/add/{product.pk}/", {"quantity": "3"})
        cookie = writer.cookies["sessionid"].value
        key, cache_key = redis_key(cookie), session_cache_key(cookie)
        replica = direct(group.replica.port)
        replica.config_set("replica-read-only", "no")
        try:
            stale = unseal(cache_key, json.loads(replica.get(key)))
            stale["cart"][str(product.pk)]["quantity"] = 1
            # What a replica that missed the last write holds: an older entry, sealed as it was written.
            replica.set(key, json.dumps(seal(cache_key, stale)))

            # A cache object of its own, as another instance would have.
            other_instance = caches.create_connection(SESSION_CACHE_ALIAS)
            for _ in range(5):
                session = unseal(cache_key, other_instance.get(cache_key))
                assert session["cart"][str(product.pk)]["quantity"] == 3
            assert lines(writer) == {str(product.pk): 3}
        finally:
            replica.delete(key)
            replica.config_set("replica-read-only", "yes")


def test_a_write_no_replica_acknowledged_is_journaled_not_trusted(group, db, make_product, paused_replica):
    product = make_product()
    with override_settings(CACHES=sentinel_caches(group)):
        client = Client()
        response = client.post(f"/cart/add/{product.pk}/", {"quantity": "1"})
        key = client.cookies["sessionid"].value
        cache = caches[SESSION_CACHE_ALIAS]

        assert response.status_code == 302  # PostgreSQL has it; the shopper sees no error
        assert SessionCacheJournal.objects.filter(cache_key=session_cache_key(key)).exists()
        assert cache.breaker.state == OPEN
        assert lines(client) == {str(product.pk): 1}  # served from PostgreSQL meanwhile

        group.replica.process.send_signal(signal.SIGCONT)
        group.wait_replicated(group.replica)
        wait_until(lambda: lines(client) == {str(product.pk): 1} and cache.breaker.allows())

        assert not SessionCacheJournal.objects.exists()


def test_a_failover_right_after_an_unreplicated_write_serves_the_write_not_the_older_copy(db, make_product):
    """The primary takes a write its replica never got, then dies; the replica is promoted with the older copy."""
    product = make_product()
    group = SentinelGroup(master="failover").start()
    try:
        with override_settings(CACHES=sentinel_caches(group)):
            client = Client()
            client.post(f"/cart/add/{product.pk}/", {"quantity": "1"})  # on both servers
            cookie = client.cookies["sessionid"].value
            key = redis_key(cookie)
            assert direct(group.replica.port).exists(key)

            # The replica falls behind: frozen, and cut off from the primary
            # (what was sent before the cut would still reach it from its socket).
            old_primary = group.primary
            group.replica.process.send_signal(signal.SIGSTOP)
            assert direct(old_primary.port).client_kill_filter(_type="replica") == 1
            client.post(f"/cart/add/{product.pk}/", {"quantity": "1"})  # PostgreSQL: 2; the primary only: 2
            old_primary.kill()
            group.replica.process.send_signal(signal.SIGCONT)
            new_port = group.wait_promoted(old_primary.port)
            assert new_port == group.replica.port

            for _ in range(3):  # never the promoted replica's older copy (1)
                assert lines(client) == {str(product.pk): 2}

            group.primary = group.rejoin(old_primary, new_port)
            cache = caches[SESSION_CACHE_ALIAS]
            wait_until(lambda: lines(client) == {str(product.pk): 2} and cache.breaker.allows(), timeout=20)
            assert not SessionCacheJournal.objects.exists()
            entry = direct(new_port).get(key)
            session = unseal(session_cache_key(cookie), json.loads(entry)) if entry else {}
            assert session.get("cart", {}).get(str(product.pk), {}).get("quantity") in (None, 2)
    finally:
        group.stop()
