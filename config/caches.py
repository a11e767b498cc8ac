"""Build the CACHES setting: Redis when a URL is given, in-process otherwise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

DEFAULT_CACHE_ALIAS = "default"
SESSION_CACHE_ALIAS = "sessions"

# Redis sits next to the shop; a request must not hang on it. An unreachable
# Redis costs at most these, and the session falls back to PostgreSQL.
REDIS_CONNECT_TIMEOUT = 0.25
REDIS_SOCKET_TIMEOUT = 0.5
REDIS_MAX_CONNECTIONS = 50


REDIS_DATABASES = 16  # Redis's default number of databases


def redis_db_number(url: str) -> int:
    """Return the database number a Redis URL selects: ?db=N, then /N (TCP only), else 0."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "db" in query:
        return int(query["db"][0])
    path = parts.path.strip("/")
    return int(path) if parts.scheme != "unix" and path else 0


def with_redis_db(url: str, db: int) -> str:
    """Return ``url`` selecting Redis database ``db``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"]
    if parts.scheme == "unix":
        return f"unix://{parts.netloc}{parts.path}?{urlencode([*query, ('db', db)])}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", urlencode(query), parts.fragment))


# django-redis carries the primary's name in a URL's host, which URL parsing
# lowercases; Sentinel compares names exactly. Only names that survive.
SENTINEL_MASTER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


@dataclass(frozen=True)
class Sentinel:
    """Redis Sentinel: where the sentinels are, the primary's name, and how writes are acknowledged."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    # A session write counts once this many replicas acknowledge it (WAIT), so
    # a failover cannot bring back an older copy; 0 turns the wait off. The
    # session tier reads both from DURABLE_SESSIONS_REPLICA_ACKS{,_TIMEOUT}.
    replica_acks: int
    ack_timeout_ms: int
    # The sentinels' own password, if they require one (not the primary's).
    password: str = ""

    @classmethod
    def parse(
        cls, sentinels: list[str], master: str, replica_acks: int, ack_timeout_ms: int, password: str = ""
    ) -> Sentinel | None:
        """Return the configuration for "host:port" strings, or None when there are none."""
        hosts = _host_ports(sentinels, "REDIS_SENTINELS")
        if not hosts:
            return None
        if not SENTINEL_MASTER_NAME.fullmatch(master or ""):
            raise ImproperlyConfigured(
                f"REDIS_SENTINEL_MASTER names the primary the sentinels watch, in lower case letters, digits, "
                f"'.', '_' and '-' (Redis compares it exactly; a URL host is lowercased): not {master!r}"
            )
        _check_replica_acks(replica_acks, ack_timeout_ms)
        return cls(hosts, master, replica_acks, ack_timeout_ms, password)

    def location(self, redis_url: str) -> str:
        """REDIS_URL with the primary's name for host: it keeps the database and the password."""
        parts = urlsplit(redis_url or "redis://")
        if parts.scheme not in ("", "redis"):
            # redis-py would keep rediss:// or unix:// connections and dial the name as a host.
            raise ImproperlyConfigured(f"With REDIS_SENTINELS, REDIS_URL is redis://, not {parts.scheme}://")
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.master}" if userinfo else self.master
        return urlunsplit(("redis", netloc, parts.path or "/0", parts.query, parts.fragment))

    def options(self) -> dict[str, Any]:
        """django-redis options that reach the primary through the sentinels."""
        options: dict[str, Any] = {
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": self.sentinels,
        }
        if self.password:
            # Given explicitly, the sentinel connections take nothing from the others: timeouts too.
            options["SENTINEL_KWARGS"] = {
                "password": self.password,
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
            }
        return options


def _host_ports(entries: list[str], setting: str) -> tuple[tuple[str, int], ...]:
    """Return (host, port) for "host:port" strings ("[::1]:port" for IPv6); refuse anything else."""
    hosts = []
    for entry in (e.strip() for e in entries):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"{setting} entries are host:port, not {entry!r}")
        hosts.append((host.strip("[]"), int(port)))
    return tuple(hosts)


def _check_replica_acks(replica_acks: int, ack_timeout_ms: int) -> None:
    if replica_acks < 0:
        raise ImproperlyConfigured("REDIS_REPLICA_ACKS is a number of replicas, 0 or more")
    if replica_acks and not 0 < ack_timeout_ms < REDIS_SOCKET_TIMEOUT * 1000:
        # WAIT 0 blocks forever; a wait past the socket timeout fails every write.
        raise ImproperlyConfigured(
            f"REDIS_REPLICA_ACK_TIMEOUT must be between 1 and {int(REDIS_SOCKET_TIMEOUT * 1000) - 1} ms"
        )


@dataclass(frozen=True)
class Cluster:
    """Redis Cluster: the seed nodes; REDIS_URL gives the password and options."""

    nodes: tuple[tuple[str, int], ...]
    # A session write counts once this many replicas of the shard that owns it
    # acknowledge it (WAIT), as under Sentinel; 0 turns the wait off.
    replica_acks: int = 0
    ack_timeout_ms: int = 0

    @classmethod
    def parse(cls, nodes: list[str], replica_acks: int = 0, ack_timeout_ms: int = 0) -> Cluster | None:
        """Return the configuration for "host:port" strings, or None when there are none."""
        hosts = _host_ports(nodes, "REDIS_CLUSTER_NODES")
        if not hosts:
            return None
        _check_replica_acks(replica_acks, ack_timeout_ms)
        return cls(hosts, replica_acks, ack_timeout_ms)

    def location(self, redis_url: str) -> str:
        """REDIS_URL, checked: a cluster has one database, 0."""
        url = redis_url or "redis://127.0.0.1/0"
        if urlsplit(url).scheme not in ("redis", "rediss"):
            raise ImproperlyConfigured(f"With REDIS_CLUSTER_NODES, REDIS_URL is redis:// or rediss://, not {url!r}")
        if redis_db_number(url) != 0:
            raise ImproperlyConfigured(
                "A Redis Cluster has one database, 0: REDIS_URL selects another. The session cache and the "
                "general cache share it, apart by their key prefixes."
            )
        return url

    def options(self) -> dict[str, Any]:
        """django-redis options that reach every primary of the cluster."""
        return {
            "CLIENT_CLASS": CLUSTER_CLIENT,
            "CONNECTION_FACTORY": "durable_sessions.cache.cluster.ClusterConnectionFactory",
            "CLUSTER_NODES": self.nodes,
        }


SESSION_CACHE_BACKEND = "durable_sessions.cache.backend.SessionRedisCache"
CLUSTER_SESSION_CACHE_BACKEND = "durable_sessions.cache.shards.ClusterSessionCache"
CLUSTER_CLIENT = "durable_sessions.cache.cluster.ClusterClient"
# On a cluster both caches share database 0: each keeps to its own prefix, and
# clearing the general cache deletes its keys only.
CLUSTER_KEY_PREFIXES = {"default": "shop", "sessions": "sessions"}
JSON_SERIALIZER = "django_redis.serializers.json.JSONSerializer"
REPLICATED_CLIENT = "durable_sessions.cache.replication.ReplicatedClient"
REPLICATED_CLUSTER_CLIENT = "durable_sessions.cache.cluster.ReplicatedClusterClient"


def redis_cache(
    url: str,
    *,
    ignore_exceptions: bool,
    serializer: str | None = None,
    backend: str | None = None,
    sentinel: Sentinel | None = None,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Return one django-redis cache definition."""
    options: dict[str, Any] = {
        # Under Sentinel too: django-redis's SentinelClient reads from replicas,
        # which may lag; one location reads and writes the primary only.
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "PARSER_CLASS": "redis.connection._HiredisParser",
        "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
        "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
        "CONNECTION_POOL_KWARGS": {"max_connections": REDIS_MAX_CONNECTIONS},
        "IGNORE_EXCEPTIONS": ignore_exceptions,
    }
    if serializer:
        options["SERIALIZER"] = serializer
    if sentinel:
        options.update(sentinel.options())
    if cluster:
        options.update(cluster.options())
    return {"BACKEND": backend or "django_redis.cache.RedisCache", "LOCATION": url, "OPTIONS": options}


def build_caches(
    redis_url: str,
    *,
    session_db: int | None = None,
    single_process: bool = True,
    sentinel: Sentinel | None = None,
    cluster: Cluster | None = None,
) -> dict[str, dict[str, Any]]:
    """Return CACHES with a general cache and a session cache on its own database.

    The session cache lives on a Redis database of its own so that clearing the
    general cache (FLUSHDB) never logs anyone out. Without Redis, sessions are
    cached in process only when one process serves the shop: with several, each
    would keep its own copy and serve it after another process changed it.
    """
    if sentinel and cluster:
        raise ImproperlyConfigured(
            "REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: a Redis Cluster fails over by itself; choose one."
        )
    if cluster:
        return _cluster_caches(cluster.location(redis_url), session_db, cluster)
    if sentinel:
        redis_url = sentinel.location(redis_url)
    if not redis_url:
        in_process = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "sessions"}
        return {
            DEFAULT_CACHE_ALIAS: {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
            SESSION_CACHE_ALIAS: in_process
            if single_process
            else {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        }
    general_db = redis_db_number(redis_url)
    if session_db is None:
        session_db = general_db + 1
    if session_db == general_db or not 0 <= session_db < REDIS_DATABASES:
        raise ImproperlyConfigured(
            f"The session cache needs a Redis database of its own, other than the general cache's "
            f"({general_db}) and below {REDIS_DATABASES}: set REDIS_SESSION_DB (now {session_db})."
        )
    return {
        # JSON, never pickle: whoever can write to Redis must not be able to run code in the shop.
        DEFAULT_CACHE_ALIAS: redis_cache(
            redis_url, ignore_exceptions=False, serializer=JSON_SERIALIZER, sentinel=sentinel
        ),
        SESSION_CACHE_ALIAS: _session_cache(with_redis_db(redis_url, session_db), sentinel),
    }


def _cluster_caches(url: str, session_db: int | None, cluster: Cluster) -> dict[str, dict[str, Any]]:
    if session_db not in (None, 0):
        raise ImproperlyConfigured(
            "A Redis Cluster has one database: unset REDIS_SESSION_DB (the session cache keeps to its own key prefix)."
        )
    caches = {
        DEFAULT_CACHE_ALIAS: redis_cache(url, ignore_exceptions=False, serializer=JSON_SERIALIZER, cluster=cluster),
        SESSION_CACHE_ALIAS: _session_cache(url, cluster=cluster),
    }
    for alias, prefix in CLUSTER_KEY_PREFIXES.items():
        caches[alias]["KEY_PREFIX"] = prefix
    return caches


def _session_cache(url: str, sentinel: Sentinel | None = None, cluster: Cluster | None = None) -> dict[str, Any]:
    cache = redis_cache(
        url,
        # Stock cached_db calls the cache unguarded (the re-cache after a database
        # read, exists, delete): a Redis outage must fall back to PostgreSQL, not
        # fail the request. Rather than swallowing errors (IGNORE_EXCEPTIONS),
        # the backend catches them, counts them in its breaker and journals the
        # writes Redis missed.
        ignore_exceptions=False,
        # django-redis defaults to pickle: anyone able to write to Redis could then
        # run code in the shop. Sessions hold JSON-safe data only.
        serializer=JSON_SERIALIZER,
        backend=CLUSTER_SESSION_CACHE_BACKEND if cluster else SESSION_CACHE_BACKEND,
        sentinel=sentinel,
        cluster=cluster,
    )
    if sentinel and sentinel.replica_acks:
        # Writes wait for DURABLE_SESSIONS_REPLICA_ACKS replicas (settings).
        cache["OPTIONS"]["CLIENT_CLASS"] = REPLICATED_CLIENT
    if cluster and cluster.replica_acks:
        cache["OPTIONS"]["CLIENT_CLASS"] = REPLICATED_CLUSTER_CLIENT
    return cache
