from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.caches import SESSION_CACHE_ALIAS, Cluster, Sentinel, build_caches, redis_db_number, with_redis_db


def test_without_redis_url_both_caches_are_in_process():
    caches = build_caches("")

    assert {c["BACKEND"] for c in caches.values()} == {"django.core.cache.backends.locmem.LocMemCache"}
    assert caches["default"]["LOCATION"] != caches[SESSION_CACHE_ALIAS]["LOCATION"]


def test_session_cache_defaults_to_the_next_redis_database():
    caches = build_caches("redis://cache.internal:6379/4")

    assert caches["default"]["LOCATION"] == "redis://cache.internal:6379/4"
    assert caches[SESSION_CACHE_ALIAS]["LOCATION"] == "redis://cache.internal:6379/5"


def test_session_database_can_be_chosen():
    caches = build_caches("redis://cache.internal:6379", session_db=9)

    assert redis_db_number(caches["default"]["LOCATION"]) == 0
    assert redis_db_number(caches[SESSION_CACHE_ALIAS]["LOCATION"]) == 9


def test_session_cache_is_guarded_and_stores_json():
    cache = build_caches("redis://127.0.0.1:6379/0")[SESSION_CACHE_ALIAS]
    options = cache["OPTIONS"]

    assert cache["BACKEND"] == "durable_sessions.cache.backend.SessionRedisCache"
    assert options["SERIALIZER"] == "django_redis.serializers.json.JSONSerializer"
    assert options["SOCKET_CONNECT_TIMEOUT"] <= 0.5
    assert options["SOCKET_TIMEOUT"] <= 1


def test_with_redis_db_keeps_credentials_and_query():
    url = with_redis_db("redis://:secret@host:6380/2?ssl_cert_reqs=none", 7)

    assert url == "redis://:secret@host:6380/7?ssl_cert_reqs=none"


def test_without_redis_many_processes_read_sessions_from_the_database():
    caches = build_caches("", single_process=False)

    assert caches[SESSION_CACHE_ALIAS]["BACKEND"] == "django.core.cache.backends.dummy.DummyCache"


def test_db_in_the_query_string_is_honoured():
    caches = build_caches("redis://cache.internal:6379?db=3")

    assert redis_db_number(caches["default"]["LOCATION"]) == 3
    assert redis_db_number(caches[SESSION_CACHE_ALIAS]["LOCATION"]) == 4


def test_unix_socket_urls_select_databases_by_query():
    caches = build_caches("unix:///run/redis.sock?db=2")

    assert caches[SESSION_CACHE_ALIAS]["LOCATION"] == "unix:///run/redis.sock?db=3"


@pytest.mark.parametrize(("url", "session_db"), [("redis://h/15", None), ("redis://h/2", 2), ("redis://h/0", 16)])
def test_a_session_database_that_cannot_work_is_refused(url, session_db):
    with pytest.raises(ImproperlyConfigured, match="REDIS_SESSION_DB"):
        build_caches(url, session_db=session_db)


# --- Redis Sentinel ---------------------------------------------------------------------------
def sentinel(hosts: str = "10.0.0.1:26379, 10.0.0.2:26379,[::1]:26380", **kwargs) -> Sentinel:
    return Sentinel.parse(hosts.split(","), kwargs.get("master", "shop"), kwargs.get("acks", 1), 100)


def test_sentinels_are_parsed_from_host_port_pairs():
    assert sentinel().sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert Sentinel.parse([], "mymaster", 1, 100) is None


@pytest.mark.parametrize("hosts", ["10.0.0.1", "10.0.0.1:port", ":26379"])
def test_malformed_sentinels_are_refused(hosts):
    with pytest.raises(ImproperlyConfigured, match="host:port"):
        sentinel(hosts)


def test_under_sentinel_both_caches_follow_the_primary_by_name():
    caches = build_caches("redis://:secret@ignored-host:6379/4", sentinel=sentinel())
    general, sessions = caches["default"], caches[SESSION_CACHE_ALIAS]

    assert general["LOCATION"] == "redis://:secret@shop/4"
    assert sessions["LOCATION"] == "redis://:secret@shop/5"
    for cache in (general, sessions):
        assert cache["OPTIONS"]["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
        assert cache["OPTIONS"]["SENTINELS"] == sentinel().sentinels
    # One location, no is_master=0 replica pool: reads go to the primary, never to a lagging replica.
    assert general["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.DefaultClient"
    assert "is_master" not in sessions["LOCATION"]
    assert sessions["OPTIONS"]["CLIENT_CLASS"] == "durable_sessions.cache.replication.ReplicatedClient"


def test_sentinel_without_redis_url_uses_database_zero_and_can_skip_the_wait():
    caches = build_caches("", sentinel=sentinel(acks=0))

    assert caches["default"]["LOCATION"] == "redis://shop/0"
    assert caches[SESSION_CACHE_ALIAS]["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.DefaultClient"


@pytest.mark.parametrize("master", ["Shop-Primary", "", "shop primary", "-shop"])
def test_master_names_redis_would_not_match_are_refused(master):
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINEL_MASTER"):
        sentinel(master=master)


@pytest.mark.parametrize("url", ["rediss://ignored:6379/0", "unix:///run/redis.sock?db=2"])
def test_under_sentinel_redis_url_must_be_plain_redis(url):
    with pytest.raises(ImproperlyConfigured, match="redis://"):
        build_caches(url, sentinel=sentinel())


@pytest.mark.parametrize("timeout", [0, 500, 2000])
def test_replica_ack_timeout_must_be_shorter_than_the_socket_timeout(timeout):
    with pytest.raises(ImproperlyConfigured, match="REDIS_REPLICA_ACK_TIMEOUT"):
        Sentinel.parse(["s1:26379"], "shop", 1, timeout)
    assert Sentinel.parse(["s1:26379"], "shop", 0, timeout) is not None  # no wait: no timeout to check


def test_sentinel_password_reaches_the_sentinel_connections_with_their_timeouts():
    config = Sentinel.parse(["s1:26379"], "shop", 1, 100, "s3cret")
    options = build_caches("", sentinel=config)[SESSION_CACHE_ALIAS]["OPTIONS"]

    assert options["SENTINEL_KWARGS"] == {"password": "s3cret", "socket_connect_timeout": 0.25, "socket_timeout": 0.5}
    assert "SENTINEL_KWARGS" not in build_caches("", sentinel=sentinel())[SESSION_CACHE_ALIAS]["OPTIONS"]


# --- Redis Cluster ----------------------------------------------------------------------------
def test_cluster_nodes_are_parsed_and_both_caches_reach_the_cluster_with_prefixes_of_their_own():
    cluster = Cluster.parse(["10.0.0.1:7000", " 10.0.0.2:7001", "[::1]:7002"])
    caches = build_caches("redis://:s3cret@ignored:6379/0", cluster=cluster)

    assert cluster.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002))
    assert Cluster.parse([]) is None
    for cache in caches.values():
        assert cache["OPTIONS"]["CONNECTION_FACTORY"] == "durable_sessions.cache.cluster.ClusterConnectionFactory"
        assert cache["OPTIONS"]["CLIENT_CLASS"] == "durable_sessions.cache.cluster.ClusterClient"
        assert cache["OPTIONS"]["CLUSTER_NODES"] == cluster.nodes
        assert cache["LOCATION"] == "redis://:s3cret@ignored:6379/0"
    assert caches["default"]["KEY_PREFIX"] != caches[SESSION_CACHE_ALIAS]["KEY_PREFIX"]
    assert caches[SESSION_CACHE_ALIAS]["BACKEND"] == "durable_sessions.cache.shards.ClusterSessionCache"


@pytest.mark.parametrize("entry", ["7000", "host:", "host:port", ""])
def test_malformed_cluster_nodes_are_refused(entry):
    with pytest.raises(ImproperlyConfigured, match="REDIS_CLUSTER_NODES"):
        Cluster.parse(["10.0.0.1:7000", entry])


def test_what_a_cluster_cannot_do_is_refused_at_start():
    cluster = Cluster.parse(["10.0.0.1:7000"])

    with pytest.raises(ImproperlyConfigured, match="one database"):
        build_caches("redis://10.0.0.1:7000/3", cluster=cluster)
    with pytest.raises(ImproperlyConfigured, match="REDIS_SESSION_DB"):
        build_caches("redis://10.0.0.1:7000/0", session_db=1, cluster=cluster)
    with pytest.raises(ImproperlyConfigured, match="choose one"):
        build_caches("redis://10.0.0.1:7000/0", cluster=cluster, sentinel=sentinel())
    with pytest.raises(ImproperlyConfigured, match="redis://"):
        build_caches("unix:///run/redis.sock", cluster=cluster)
