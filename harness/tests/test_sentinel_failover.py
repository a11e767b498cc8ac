"""Redis Sentinel failover under scripted shoppers: the primary dies, a replica takes over, nobody notices.

One Redis primary, one replica and three sentinels on loopback ports of their
own; two shop instances behind nginx round robin, so every shopper's requests
alternate between instances (read-your-writes across instances). The primary
is SIGKILLed mid-traffic; the sentinels promote the replica; the old primary
comes back and becomes the new primary's replica. The outcome is written to
artifacts/sentinel-failover.md.
"""

from __future__ import annotations

import time

import pytest
import redis
import requests

from harness.load.scenario import HEADER, Outcome, ScriptedShopper, run_traffic_for, traffic, verify
from harness.servers.backing import postgres_base_url
from harness.servers.cluster import Cluster, cluster_env, prepare_database, products_for_load
from harness.servers.sentinel import MASTER, SentinelGroup
from harness.servers.shop import BASE_DIR
from harness.testing import session_cache_key

pytestmark = pytest.mark.resilience

DATABASE = "shop_sentinel"
SHOPPERS = 6
REPORT = BASE_DIR / "artifacts" / "sentinel-failover.md"


def session_keys_in(port: int, shoppers: list[ScriptedShopper]) -> int:
    """How many of the shoppers' sessions the Redis server on ``port`` holds (session cache: db 1)."""
    client = redis.Redis(port=port, db=1, socket_timeout=2)
    return sum(bool(client.exists(f":1:{session_cache_key(s.client.session_key)}")) for s in shoppers)


def test_primary_killed_replica_promoted_no_shopper_signed_out_no_line_lost():
    database_url = f"{postgres_base_url()}/{DATABASE}"
    group = SentinelGroup().start()
    cluster = None
    try:
        env = cluster_env(database_url, "", REDIS_SENTINELS=group.hosts, REDIS_SENTINEL_MASTER=MASTER)
        prepare_database(env, fresh=True)
        products = products_for_load(database_url, 40)
        cluster = Cluster(env)
        cluster.start(2)
        shoppers = [ScriptedShopper(cluster.url, f"sentinel{i}", products, seed=100 + i) for i in range(SHOPPERS)]
        for shopper in shoppers:
            shopper.sign_up()
        old_port = group.primary.port
        cached_before = session_keys_in(old_port, shoppers)

        outcome = Outcome("Sentinel: primary SIGKILLed, replica promoted")
        with traffic(shoppers, outcome):
            run_traffic_for(2)  # the primary dies mid-traffic
            killed = time.monotonic()
            group.primary.kill()
            new_port = group.wait_promoted(old_port)
            promoted_after = time.monotonic() - killed
            group.wait_failover_done(new_port)  # every sentinel has the new primary, the failover is over
            group.primary.start()  # the old primary returns; the sentinels make it a replica
            group.wait_replicated(group.primary, timeout=60)
            rejoined_after = time.monotonic() - killed
            run_traffic_for(4)  # shoppers shop on the new primary with its replica back
        verify(shoppers, cluster.in_rotation, outcome)

        # Redis serves sessions again, from the new primary, on every instance.
        deadline = time.monotonic() + 20
        while session_keys_in(new_port, shoppers) < SHOPPERS and time.monotonic() < deadline:
            for shopper in shoppers:
                for instance in cluster.in_rotation:
                    requests.get(f"{instance.url}/cart/", cookies=shopper.client.http.cookies, timeout=10)
            time.sleep(0.5)
        cached_after = session_keys_in(new_port, shoppers)

        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(
            f"{HEADER}\n{outcome.row()}\n\n"
            f"Primary SIGKILLed; the sentinels promoted the replica after {promoted_after:.1f} s; the old primary "
            f"was a replica again after {rejoined_after:.1f} s. Failed requests during the failover: "
            f"{outcome.errors}. Sessions cached in Redis: {cached_before} of {SHOPPERS} before, {cached_after} "
            f"of {SHOPPERS} on the new primary after.\n"
        )
        print("\n" + REPORT.read_text())
        assert outcome.requests > 0
        assert (outcome.logouts, outcome.lost_lines, outcome.duplicated_lines, outcome.order_mismatches) == (
            0,
            0,
            0,
            0,
        ), (
            outcome.row(),
            outcome.failures,
        )
        assert outcome.errors == 0, outcome.failures
        assert cached_before == SHOPPERS and cached_after == SHOPPERS
    finally:
        if cluster is not None:
            cluster.stop()
        group.stop()
