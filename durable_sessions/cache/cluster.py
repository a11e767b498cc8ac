"""Run django-redis on a Redis Cluster: redis-py's ``RedisCluster`` behind django-redis's client.

django-redis has no cluster client (django-redis #208, #606, #710), but its
clients and connection factories are pluggable, and redis-py's
``RedisCluster`` routes each command to the primary that owns its key's slot,
follows ``MOVED`` and ``ASK``, and splits ``DEL`` and pipelines by slot. What
django-redis would send as one command over many slots is split here:

- ``get_many`` reads with ``MGET`` per slot (``mget_nonatomic``), not one
  cross-slot ``MGET``, which the cluster refuses;
- ``clear`` deletes this cache's own keys (its ``KEY_PREFIX``), on every
  primary, instead of ``FLUSHDB``: a cluster has one database, which the
  general cache shares with the sessions.

A well-kept Django backend with a cluster client (django-valkey's) would bring
valkey-py and a second Redis stack beside the one the session tier builds on
(its guarded backend, breaker, journal and replica acknowledgements are
django-redis classes); these two classes keep one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from durable_sessions.cache.replication import ReplicaLagError
from durable_sessions.conf import app_settings

# Attempts after the first, when a node does not answer: see ClusterConnectionFactory.
CLUSTER_RETRIES = 0


class ClusterConnectionFactory(ConnectionFactory):
    """Return one ``RedisCluster`` per location and process: it keeps a connection pool per node itself.

    Options: ``CLUSTER_NODES``, the seed nodes as (host, port) pairs. The
    location (REDIS_URL) gives the password and username; its host is not
    dialled.
    """

    _clusters: dict[tuple, RedisCluster] = {}

    def connect(self, url: str) -> RedisCluster:
        nodes = tuple(tuple(node) for node in self.options["CLUSTER_NODES"])
        key = (url, nodes)
        cluster = self._clusters.get(key)
        if cluster is None:
            cluster = self._clusters[key] = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in nodes], **self._cluster_kwargs(url)
            )
        return cluster

    def _cluster_kwargs(self, url: str) -> dict[str, Any]:
        params = self.make_connection_params(url)
        parts = urlsplit(url)
        kwargs: dict[str, Any] = {
            "parser_class": params["parser_class"],
            "socket_timeout": params.get("socket_timeout"),
            "socket_connect_timeout": params.get("socket_connect_timeout"),
            "max_connections": self.pool_cls_kwargs.get("max_connections", 50),
            # A primary that is down (until its replica is promoted) fails only
            # the keys of its slots; the cluster starts and serves the others.
            "require_full_coverage": False,
            # No retry: a node that does not answer fails the call at once, and the guard falls back
            # to PostgreSQL and counts it against that primary's breaker. (redis-py reads the slot map
            # again on such a failure either way, so the next call follows a failover; its default of
            # 10 retries with a growing backoff cost seconds per request while a primary was paused.)
            "retry": Retry(NoBackoff(), CLUSTER_RETRIES),
        }
        if parts.password:
            kwargs["password"] = unquote(parts.password)
        if parts.username:
            kwargs["username"] = unquote(parts.username)
        return kwargs

    def disconnect(self, connection: RedisCluster) -> None:
        connection.disconnect_connection_pools()


class ClusterClient(DefaultClient):
    """django-redis's client, with the commands that would cross slots split by slot."""

    def get_many(self, keys, version=None, client=None) -> dict:
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return {}
        map_keys = {self.make_key(k, version=version): k for k in keys}
        try:
            results = client.mget_nonatomic(list(map_keys))
        except RedisError as error:  # connection and timeout errors among them
            raise ConnectionInterrupted(connection=client) from error
        return {
            map_keys[key]: self.decode(value) for key, value in zip(map_keys, results, strict=True) if value is not None
        }

    def clear(self, client=None) -> None:
        """Delete this cache's keys only, on every primary (a cluster has one database, shared)."""
        self.delete_pattern("*", client=client)


class ReplicatedClusterClient(ClusterClient):
    """The cluster client whose writes return once ``REPLICA_ACKS`` replicas of the owning shard hold them.

    ``WAIT`` counts the replicas of the primary it is sent to, for the writes
    sent before it on the same connection: each write goes, with its ``WAIT``,
    in one pipeline on the connection of the primary that owns its key's slot
    (keys of several primaries: a pipeline each). A write fewer replicas
    acknowledged, or one that met a slot on the move (``MOVED``, ``ASK``, while
    the cluster reshards), raises ReplicaLagError: the guarded backend
    journals its keys, as for one Redis under Sentinel, and the session is
    read from PostgreSQL until the journal has deleted them.
    """

    def __init__(self, server, params, backend) -> None:
        super().__init__(server, params, backend)
        self.replica_acks = int(app_settings.REPLICA_ACKS)
        self.replica_ack_timeout = int(app_settings.REPLICA_ACK_TIMEOUT)

    def _acknowledged(self, keys: list[str], write: Callable[[Any, list[str]], None], version=None) -> list:
        """Run ``write(pipeline, keys of one primary)`` on each primary owning some of ``keys``, with a WAIT each."""
        cluster: RedisCluster = self.get_client(write=True)
        by_node: dict[str, tuple[Any, list[str]]] = {}
        for key in keys:
            node = cluster.get_node_from_key(self.make_key(key, version=version))
            by_node.setdefault(node.name, (node, []))[1].append(key)
        results: list = []
        for node, node_keys in by_node.values():
            pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
            write(pipe, node_keys)
            pipe.execute_command("WAIT", self.replica_acks, self.replica_ack_timeout)
            try:
                *answers, acks = pipe.execute()
            except ResponseError as error:  # MOVED or ASK: the slot map is stale, or the slot is moving
                slots_refresh(cluster)
                raise ReplicaLagError(f"a session write met a slot on the move: {error}") from error
            except (RedisConnectionError, RedisTimeoutError):
                slots_refresh(cluster)  # the primary may have failed over: ask the others who owns its slots
                raise
            if acks < self.replica_acks:
                raise ReplicaLagError(f"{acks} of {self.replica_acks} replicas acknowledged a session write")
            results += answers
        return results

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None, nx=False, xx=False):
        if client is not None or (nx and timeout is not DEFAULT_TIMEOUT and timeout is not None and timeout <= 0):
            # The caller's own pipeline decides (rewarm adds copies with NX, which a failover may lose harmlessly);
            # django-redis answers an already expired NX with EXISTS and writes nothing.
            return super().set(key, value, timeout, version, client, nx, xx)
        results = self._acknowledged(
            [key], lambda pipe, _: DefaultClient.set(self, key, value, timeout, version, pipe, nx, xx), version
        )
        return bool(results[0]) if results else False

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        if client is not None:
            return super().set_many(data, timeout, version, client)

        def write(pipe, keys: list[str]) -> None:
            for key in keys:
                DefaultClient.set(self, key, data[key], timeout, version, pipe)

        if data:
            self._acknowledged(list(data), write, version)
        return None

    def delete(self, key, version=None, prefix=None, client=None):
        if client is not None:
            return super().delete(key, version, prefix, client)
        results = self._acknowledged([key], lambda pipe, _: DefaultClient.delete(self, key, version, prefix, pipe))
        return bool(results[0]) if results else False

    def delete_many(self, keys, version=None, client=None):
        keys = list(keys)
        if client is not None or not keys:
            return super().delete_many(keys, version, client) if keys else 0

        def write(pipe, node_keys: list[str]) -> None:
            for key in node_keys:  # a DEL each: one primary's keys lie in several slots (CROSSSLOT)
                pipe.delete(self.make_key(key, version=version))

        return sum(self._acknowledged(keys, write, version))


def slots_refresh(cluster: RedisCluster) -> None:
    """Read the slot map again from any node that answers, for the next call.

    Any failure (no node answers, or those that do serve no slot) keeps the old map for the next try.
    """
    with contextlib.suppress(Exception):
        cluster.nodes_manager.initialize()
