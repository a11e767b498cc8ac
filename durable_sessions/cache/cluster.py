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

from typing import Any
from urllib.parse import unquote, urlsplit

from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, RedisError)


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
        except _CONNECTION_ERRORS as error:
            raise ConnectionInterrupted(connection=client) from error
        return {
            map_keys[key]: self.decode(value) for key, value in zip(map_keys, results, strict=True) if value is not None
        }

    def clear(self, client=None) -> None:
        """Delete this cache's keys only, on every primary (a cluster has one database, shared)."""
        self.delete_pattern("*", client=client)
