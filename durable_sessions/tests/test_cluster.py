"""The session tier and the shop's caches on a real Redis Cluster: three primaries, three replicas, private ports."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
import redis
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from config.caches import CLUSTER_KEY_PREFIXES, SESSION_CACHE_ALIAS, Cluster, build_caches
from durable_sessions.cache.breaker import OPEN
from durable_sessions.cache.journal import journal_write
from durable_sessions.models import SessionCacheJournal
from harness.servers.redis_cluster import RedisClusterGroup
from harness.testing import basket_lines, session_cache_key, session_cached, sign_in, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup().start()
    yield group
    group.stop()


@pytest.fixture
def on_cluster(redis_cluster, quick_probes) -> Iterator[RedisClusterGroup]:
    """The shop's caches on the cluster, emptied first."""
    settings_caches = build_caches("redis://127.0.0.1/0", cluster=Cluster.parse(redis_cluster.nodes.split(",")))
    redis_cluster.wait_ready()
    with override_settings(CACHES=settings_caches):
        redis_cluster.client().flushall()
        yield redis_cluster


def keys_by_primary(group: RedisClusterGroup, prefix: str) -> dict[int, int]:
    """Return how many keys under ``prefix`` each primary holds, asked of each primary itself."""
    return {
        port: sum(1 for _ in redis.Redis(port=port).scan_iter(match=f"{prefix}:*", count=1000))
        for port in group.primaries()
    }


def test_sessions_land_on_every_primary_and_are_read_without_sql(on_cluster, make_product):
    products = [make_product() for _ in range(3)]
    shoppers = [Client() for _ in range(30)]  # 30 keys miss one of three primaries once in 60,000 runs
    for number, shopper in enumerate(shoppers):
        assert shopper.post(f"/cart/add/{products[number % 3].pk}/").status_code == 302

    spread = keys_by_primary(on_cluster, CLUSTER_KEY_PREFIXES[SESSION_CACHE_ALIAS])
    assert len(spread) == 3 and all(spread.values()), spread
    for number, shopper in enumerate(shoppers):
        assert basket_lines(shopper) == {str(products[number % 3].pk): 1}
        with CaptureQueriesContext(connection) as queries:
            assert shopper.get("/accounts/me.json").status_code == 200
        assert queries.captured_queries == []  # the session came from the cluster


def test_a_warm_basket_and_list_page_read_across_slots(on_cluster, make_product):
    products = [make_product() for _ in range(8)]
    shopper = Client()
    for product in products:
        shopper.post(f"/cart/add/{product.pk}/")
    shopper.get("/cart/")
    shopper.get("/")

    for path in ("/cart/", "/"):
        with CaptureQueriesContext(connection) as queries:
            assert shopper.get(path).status_code == 200
        assert queries.captured_queries == [], path
    assert all(keys_by_primary(on_cluster, CLUSTER_KEY_PREFIXES["default"]).values())


def test_signing_out_leaves_a_tombstone_and_revoking_ends_sessions_across_slots(on_cluster, ada):
    devices = [Client() for _ in range(6)]
    for device in devices:
        sign_in(device)
    gone = devices[0].cookies["sessionid"].value
    devices[0].post("/accounts/logout/")

    assert session_cached(gone) is not None  # a tombstone, not the session
    assert not devices[0].get("/accounts/me.json").json()["authenticated"]
    call_command("sessions", "revoke", "--user", "ada", stdout=io.StringIO())
    assert not any(device.get("/accounts/me.json").json()["authenticated"] for device in devices[1:])


def test_clearing_the_general_cache_keeps_every_session(on_cluster, ada):
    device = Client()
    sign_in(device)
    caches["default"].set("something", 1)

    caches["default"].clear()

    assert caches["default"].get("something") is None
    assert device.get("/accounts/me.json").json()["authenticated"]


def test_stats_see_redis_and_failed_sign_ins_are_counted(on_cluster, ada, forget_login_failures):
    for _ in range(3):
        sign_in(Client())
    out = io.StringIO()
    call_command("sessions", "stats", stdout=out)
    assert re.search(r"live in Redis\s+3\b", out.getvalue()), out.getvalue()

    device = Client()
    for _ in range(6):
        sign_in(device, password="wrong")
    refused = sign_in(device)  # the right password, while sign-ins to ada are paused: counted on the cluster
    assert refused.status_code == 200 and "Too many failed sign-ins" in refused.content.decode()


def test_rewarm_after_a_flush_puts_every_session_back_on_its_own_primary(on_cluster, make_product):
    product = make_product()
    shoppers = [Client() for _ in range(30)]  # 30 keys miss one of three primaries once in 60,000 runs
    for shopper in shoppers:
        assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302
    on_cluster.flushall()
    assert not any(keys_by_primary(on_cluster, CLUSTER_KEY_PREFIXES[SESSION_CACHE_ALIAS]).values())

    out = io.StringIO()
    call_command("sessions", "rewarm", "--batch-size", "7", stdout=out)  # a pipeline a batch, split by primary

    assert "Re-warmed 30 session(s)" in out.getvalue() and "in 5 batch(es)" in out.getvalue()
    spread = keys_by_primary(on_cluster, CLUSTER_KEY_PREFIXES[SESSION_CACHE_ALIAS])
    assert all(spread.values()) and sum(spread.values()) == 30, spread
    for shopper in shoppers:
        assert read_without_sql(shopper)  # the session from the cluster
        assert basket_lines(shopper) == {str(product.pk): 1}


def replicas(group: RedisClusterGroup) -> list:
    primaries = set(group.primaries())
    return [server for server in group.servers if server.process and server.port not in primaries]


@pytest.fixture
def on_cluster_with_acks(redis_cluster, settings, quick_probes) -> Iterator[RedisClusterGroup]:
    """The shop's caches on the cluster, each session write acknowledged by its shard's replica."""
    settings.DURABLE_SESSIONS_REPLICA_ACKS, settings.DURABLE_SESSIONS_REPLICA_ACK_TIMEOUT = 1, 100
    config = Cluster.parse(redis_cluster.nodes.split(","), replica_acks=1, ack_timeout_ms=100)
    redis_cluster.wait_ready()
    with override_settings(CACHES=build_caches("redis://127.0.0.1/0", cluster=config)):
        redis_cluster.client().flushall()
        yield redis_cluster


def test_with_replica_acks_session_writes_on_every_shard_are_acknowledged(on_cluster_with_acks, make_product):
    product = make_product()
    shoppers = [Client() for _ in range(30)]  # 30 keys miss one of three primaries once in 60,000 runs
    for shopper in shoppers:
        assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302

    assert all(keys_by_primary(on_cluster_with_acks, CLUSTER_KEY_PREFIXES[SESSION_CACHE_ALIAS]).values())
    assert not SessionCacheJournal.objects.exists()  # every write was acknowledged, none journaled
    assert caches[SESSION_CACHE_ALIAS].breaker.state != OPEN


def test_a_write_its_shards_replica_did_not_acknowledge_is_journaled_not_trusted(on_cluster_with_acks, make_product):
    product = make_product()
    paused = replicas(on_cluster_with_acks)
    for replica in paused:
        replica.pause()
    try:
        shopper = Client()
        assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302  # PostgreSQL has it
        key = shopper.cookies["sessionid"].value
        assert SessionCacheJournal.objects.filter(cache_key=session_cache_key(key)).exists()
        assert basket_lines(shopper) == {str(product.pk): 1}  # served from PostgreSQL meanwhile
    finally:
        for replica in paused:
            replica.resume()
    cache = caches[SESSION_CACHE_ALIAS]
    wait_until(lambda: basket_lines(shopper) == {str(product.pk): 1} and cache.breaker.allows(), timeout=20)
    assert not SessionCacheJournal.objects.exists()  # replayed: the key deleted on its shard


# --- One primary out of reach, and a failover (the breaker and journal per primary) -------------


def shard_of(group: RedisClusterGroup, cookie: str) -> int:
    """Return the port of the primary holding this session's cache key."""
    return group.owner(f"{CLUSTER_KEY_PREFIXES[SESSION_CACHE_ALIAS]}:1:{session_cache_key(cookie)}")


def shoppers_by_shard(group: RedisClusterGroup, product, count: int = 30) -> dict[int, list[Client]]:
    by_shard: dict[int, list[Client]] = {port: [] for port in group.primaries()}
    for _ in range(count):  # 30 keys miss one of three primaries once in 60,000 runs
        shopper = Client()
        assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302
        by_shard[shard_of(group, shopper.cookies["sessionid"].value)].append(shopper)
    assert all(by_shard.values()), {port: len(shoppers) for port, shoppers in by_shard.items()}
    return by_shard


def read_without_sql(shopper: Client) -> bool:
    with CaptureQueriesContext(connection) as queries:
        assert shopper.get("/accounts/me.json").status_code == 200
    return not queries.captured_queries


def test_one_primary_out_of_reach_leaves_the_other_shards_served_from_redis(on_cluster, make_product):
    product = make_product()
    by_shard = shoppers_by_shard(on_cluster, product)
    down, *up = by_shard
    replica = on_cluster.replica_of(down)
    replica.cli("CONFIG", "SET", "cluster-replica-no-failover", "yes")  # out of reach, not replaced
    cache = caches[SESSION_CACHE_ALIAS]
    on_cluster.server(down).pause()
    try:
        for shopper in by_shard[down]:
            assert basket_lines(shopper) == {str(product.pk): 1}  # from PostgreSQL
        assert cache.shards.breaker(f"127.0.0.1:{down}").state == OPEN
        for port in up:
            assert cache.shards.breaker(f"127.0.0.1:{port}").state != OPEN
            for shopper in by_shard[port]:
                assert read_without_sql(shopper), port  # still from Redis
                assert basket_lines(shopper) == {str(product.pk): 1}
    finally:
        on_cluster.server(down).resume()
        on_cluster.wait_ready()  # no node flagged failing any more: the replica would take over otherwise
        replica.cli("CONFIG", "SET", "cluster-replica-no-failover", "no")
    wait_until(lambda: all(read_without_sql(shopper) for shopper in by_shard[down]), timeout=20)


def test_a_primary_killed_mid_traffic_fails_over_and_a_write_its_replica_missed_is_never_served(
    on_cluster_with_acks, make_product
):
    group = on_cluster_with_acks
    kite, mug = make_product(), make_product()
    by_shard = shoppers_by_shard(group, kite)
    victim, *_ = by_shard
    replica, lost = group.replica_of(victim), by_shard[victim][0]
    expected = {id(shopper): {str(kite.pk): 1} for shoppers in by_shard.values() for shopper in shoppers}

    replica.pause()  # the next write on the victim's shard reaches its primary only
    assert lost.post(f"/cart/add/{mug.pk}/").status_code == 302
    expected[id(lost)] = {str(kite.pk): 1, str(mug.pk): 1}
    assert SessionCacheJournal.objects.filter(
        cache_key=session_cache_key(lost.cookies["sessionid"].value)
    ).exists()  # not acknowledged: journaled
    group.server(victim).kill()
    replica.resume()  # holds the lost shopper's session without the mug, and is promoted

    everyone = [shopper for shoppers in by_shard.values() for shopper in shoppers]
    goods = [make_product() for _ in range(10)]  # a line holds at most 10
    rounds = 0
    while victim in group.primaries() or rounds < 2:  # traffic on every shard until the replica is promoted
        product = goods[rounds % len(goods)]
        for shopper in everyone:
            assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302
            lines = expected[id(shopper)]
            lines[str(product.pk)] = lines.get(str(product.pk), 0) + 1
            assert basket_lines(shopper) == lines  # never the copy the replica had
        rounds += 1
    assert replica.port in group.primaries()

    group.server(victim).start()  # comes back as the new primary's replica: writes are acknowledged again
    cache = caches[SESSION_CACHE_ALIAS]
    wait_until(lambda: basket_lines(lost) == expected[id(lost)] and cache.breaker.allows(), timeout=30)
    assert not SessionCacheJournal.objects.exists()
    for shopper in everyone:
        assert basket_lines(shopper) == expected[id(shopper)]
        assert read_without_sql(shopper)  # every shard serves from Redis again
    group.wait_ready()  # the old primary a replica again, for the next test


def test_a_key_replayed_at_its_first_try_is_read_from_redis_again_at_once(on_cluster_with_acks, make_product):
    product = make_product()
    shopper = Client()
    assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302
    replica = on_cluster_with_acks.replica_of(shard_of(on_cluster_with_acks, shopper.cookies["sessionid"].value))
    replica.pause()
    try:
        assert shopper.post(f"/cart/add/{product.pk}/").status_code == 302  # not acknowledged: journaled
    finally:
        replica.resume()
    assert SessionCacheJournal.objects.exists()

    cache = caches[SESSION_CACHE_ALIAS]
    wait_until(lambda: basket_lines(shopper) == {str(product.pk): 2} and cache.breaker.allows(), timeout=5)
    assert read_without_sql(shopper)  # its slot served from Redis again, not kept aside for minutes


def test_a_replay_leaves_the_journal_of_a_primary_out_of_reach_unread(on_cluster, make_product):
    product = make_product()
    by_shard = shoppers_by_shard(on_cluster, product)
    down, reachable, *_ = by_shard
    cache = caches[SESSION_CACHE_ALIAS]
    out_of_reach = cache.shards.breaker(f"127.0.0.1:{down}")
    for _ in range(out_of_reach.fail_max):
        out_of_reach.record_failure()
    stranded = [key for key in (f"stranded-{n}" for n in range(4000)) if cache._primary(key) == out_of_reach.name]
    journal_write(stranded[:1200], cache.shards, slot_of=cache.shards.slot)  # writes its primary missed
    shopper = by_shard[reachable][0]
    key = session_cache_key(shopper.cookies["sessionid"].value)
    cache.shards.mark([key])
    journal_write([key], cache.shards, slot_of=cache.shards.slot)

    with CaptureQueriesContext(connection) as queries:
        assert basket_lines(shopper) == {str(product.pk): 1}

    batches = [q for q in queries.captured_queries if "sessioncachejournal" in q["sql"] and "FOR UPDATE" in q["sql"]]
    assert len(batches) == 2, len(batches)  # its own key's batch, then none: 1,200 rows left unread, not 3 batches
    assert not SessionCacheJournal.objects.filter(cache_key=key).exists()  # replayed
    assert SessionCacheJournal.objects.count() == 1200  # left for when their primary answers
    assert read_without_sql(shopper)
    cache.shards.retire_all_but(set())  # the breaker opened by hand goes: the next test starts afresh
