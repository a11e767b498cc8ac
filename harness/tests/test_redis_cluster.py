"""The session tier on a Redis Cluster under scripted shoppers: failover, resharding, flush, stop and pause.

Three primaries and three replicas on loopback ports of their own
(harness/servers/redis_cluster.py); two shop instances behind nginx round
robin, so every shopper's requests alternate between instances; session
writes acknowledged by the owning shard's replica. Scenarios run one after
another on one rig (module scope, in file order). After each, every shopper
checks its sign-in state, its basket on every instance and its orders against
what it knows it did. The table is written to artifacts/redis-cluster.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
import requests

from harness.load.scenario import (
    PASSWORD,
    Outcome,
    ScriptedShopper,
    hold,
    run_traffic_for,
    stopped_while_shopping,
    traffic,
    verify,
    write_table,
)
from harness.load.shopper import Shopper
from harness.servers.backing import postgres_base_url
from harness.servers.cluster import Cluster, cluster_env, prepare_database, products_for_load
from harness.servers.redis_cluster import RedisClusterGroup
from harness.servers.shop import BASE_DIR
from harness.testing import session_cache_key, wait_until

pytestmark = pytest.mark.resilience

DATABASE = "shop_redis_cluster"
SHOPPERS = 6
REPORT = BASE_DIR / "artifacts" / "redis-cluster.md"
SESSION_PREFIX = "sessions"  # config.caches.CLUSTER_KEY_PREFIXES: the session cache's keys on a cluster


@dataclass
class Rig:
    redis: RedisClusterGroup
    cluster: Cluster
    shoppers: list[ScriptedShopper]
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    database_url = f"{postgres_base_url()}/{DATABASE}"
    group = RedisClusterGroup().start()
    cluster = None
    rig = None
    try:
        env = cluster_env(database_url, "redis://127.0.0.1/0", REDIS_CLUSTER_NODES=group.nodes, REDIS_REPLICA_ACKS="1")
        prepare_database(env, fresh=True)
        products = products_for_load(database_url, 40)
        cluster = Cluster(env).start(2)
        shoppers = [ScriptedShopper(cluster.url, f"sharded{i}", products, seed=200 + i) for i in range(SHOPPERS)]
        for shopper in shoppers:
            shopper.sign_up()
        rig = Rig(group, cluster, shoppers)
        yield rig
    finally:
        if cluster is not None:
            cluster.stop()
        group.stop()
        write_report(rig)


def write_report(rig: Rig | None) -> None:
    write_table(REPORT, rig.outcomes if rig else [], rig.notes if rig else [])


def finish(rig: Rig, outcome: Outcome) -> None:
    """Check every shopper, then that the cluster is whole again and holds every session once more."""
    verify(rig.shoppers, rig.cluster.in_rotation, outcome)
    rig.outcomes.append(outcome)
    write_report(rig)
    assert outcome.problems == 0, (outcome.row(), outcome.failures)  # errors included: none failed
    assert outcome.requests > 0
    rig.redis.wait_ready()  # every primary with its replica, for the next scenario
    wait_until(lambda: every_session_cached_again(rig), timeout=30, interval=0.5)


def session_keys_by_primary(group: RedisClusterGroup) -> dict[int, int]:
    """How many session keys each primary holds, asked of each primary itself."""
    return {
        port: sum(1 for _ in redis.Redis(port=port).scan_iter(match=f"{SESSION_PREFIX}:*", count=1000))
        for port in group.primaries()
    }


def cached(group: RedisClusterGroup, shopper: ScriptedShopper) -> bool:
    """Whether the cluster holds this shopper's session."""
    key = f"{SESSION_PREFIX}:1:{session_cache_key(shopper.client.session_key)}"
    return bool(group.client().exists(key))


def every_session_cached_again(rig: Rig) -> bool:
    """Read every shopper's basket on every instance, then say whether the cluster holds every session."""
    for shopper in rig.shoppers:
        for instance in rig.cluster.in_rotation:
            requests.get(f"{instance.url}/cart/", cookies=shopper.client.http.cookies, timeout=10)
    return all(cached(rig.redis, shopper) for shopper in rig.shoppers)


# --- Scenarios, in order --------------------------------------------------------------------------------
def test_1_sessions_land_on_every_primary_and_are_read_on_every_instance(rig):
    outcome = Outcome("C1. sessions on every primary")
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)
        product_id = rig.shoppers[0].products[0][0]
        for _ in range(30):  # 30 keys miss one of three primaries once in 60,000 runs
            visitor = Shopper(rig.cluster.url)
            assert visitor.post(f"/cart/add/{product_id}/").status_code == 302
        run_traffic_for(1)
    spread = session_keys_by_primary(rig.redis)
    rig.notes.append(f"C1: session keys per primary: {sorted(spread.values())}.")
    assert len(spread) == 3 and all(spread.values()), spread
    finish(rig, outcome)


def test_2_a_primary_sigkilled_mid_traffic_its_replica_promoted(rig):
    outcome = Outcome("C2. primary SIGKILLed, replica promoted")
    victim = next(iter(rig.redis.primaries()))
    replica = rig.redis.replica_of(victim)
    with traffic(rig.shoppers, outcome):
        run_traffic_for(2)  # the primary dies mid-traffic
        killed = time.monotonic()
        rig.redis.server(victim).kill()
        wait_until(lambda: replica.port in rig.redis.primaries(), timeout=30, interval=0.1)
        promoted_after = time.monotonic() - killed
        run_traffic_for(2)  # shoppers shop on a shard without a replica: its writes are journaled
        rig.redis.server(victim).start()  # comes back as the new primary's replica
        wait_until(lambda: rig.redis.replica_of(replica.port).port == victim, timeout=30, interval=0.1)
        run_traffic_for(3)
    rig.notes.append(
        f"C2: the replica was promoted {promoted_after:.1f} s after its primary was SIGKILLed; "
        f"{outcome.errors} requests failed."
    )
    finish(rig, outcome)


def test_3_slots_resharded_between_primaries_under_traffic(rig):
    outcome = Outcome("C3. 4,000 slots resharded under traffic")
    source, target, *_ = rig.redis.primaries()
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)
        started = time.monotonic()
        rig.redis.reshard(4000, source, target)  # MIGRATE key by key: MOVED and ASK meanwhile
        took = time.monotonic() - started
        run_traffic_for(2)
    rig.notes.append(f"C3: 4,000 slots and their keys moved in {took:.1f} s under traffic; {outcome.errors} errors.")
    finish(rig, outcome)


def test_4_flushall_on_every_primary(rig):
    outcome = Outcome("C4. FLUSHALL on every primary")
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1.5)
        rig.redis.flushall()
        run_traffic_for(2.5)  # sessions come back from PostgreSQL
    finish(rig, outcome)


def test_5_the_whole_cluster_stopped_for_ten_seconds(rig):
    outcome = Outcome("C5. every node stopped 10 s, started")
    open_during, closed_after = stopped_while_shopping(
        rig.shoppers,
        outcome,
        stop=rig.redis.stop_servers,
        start=rig.redis.start_servers,  # returns once the cluster is ok again
        breakers_open=rig.cluster.breakers_open,
    )
    rig.notes.append(
        f"C5: {open_during} worker breakers were open with the cluster stopped; all closed {closed_after:.1f} s "
        "after it was back, under traffic."
    )
    finish(rig, outcome)
    assert open_during > 0


def test_6_every_primary_paused_while_baskets_change_and_one_signs_out(rig):
    outcome = Outcome("C6. every primary paused 10 s, one signs out")
    leaving, *others = rig.shoppers
    primaries = [rig.redis.server(port) for port in rig.redis.primaries()]
    replicas = [rig.redis.replica_of(server.port) for server in primaries]
    for replica in replicas:  # paused, not failed over: the primaries come back holding their old copies
        replica.cli("CONFIG", "SET", "cluster-replica-no-failover", "yes")
    try:
        with traffic(others, outcome):
            run_traffic_for(1)
            for server in primaries:
                server.pause()
            try:
                hold(3)
                old_cookies = requests.cookies.cookiejar_from_dict(leaving.client.http.cookies.get_dict())
                assert leaving.client.sign_out().status_code == 302
                hold(7)
            finally:
                for server in primaries:
                    server.resume()
            run_traffic_for(3)
    finally:
        rig.redis.wait_ready()  # no node flagged failing any more: a replica would take over otherwise
        for replica in replicas:
            replica.cli("CONFIG", "SET", "cluster-replica-no-failover", "no")
    for instance in rig.cluster.in_rotation:
        me = requests.get(f"{instance.url}/accounts/me.json", cookies=old_cookies, timeout=10).json()
        assert me["authenticated"] is False, f"ended session came back on {instance.url}"
    assert leaving.client.sign_in(leaving.name, PASSWORD).status_code == 302
    leaving.basket = {}
    finish(rig, outcome)
