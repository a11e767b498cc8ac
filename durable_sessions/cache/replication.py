"""Return from a session write only once enough Redis replicas hold it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.client import DefaultClient
from redis.exceptions import RedisError

from durable_sessions.conf import app_settings


class ReplicaLagError(RedisError):
    """Fewer replicas than required acknowledged a write in time."""


class ReplicatedClient(DefaultClient):
    """django-redis's client whose writes return once ``REPLICA_ACKS`` replicas hold them.

    Redis replicates asynchronously: a primary that dies right after a write
    can hand over to a replica without it, and the replica would then serve the
    session as it was before. Each write here is sent with a ``WAIT`` in one
    pipeline, on one connection, so it costs no extra round trip. A write fewer
    replicas acknowledged raises ReplicaLagError: the guarded backend counts it
    as failed and journals the key, so no process reads it until it has been
    deleted again.
    """

    def __init__(self, server, params, backend) -> None:
        super().__init__(server, params, backend)
        self.replica_acks = int(app_settings.REPLICA_ACKS)
        self.replica_ack_timeout = int(app_settings.REPLICA_ACK_TIMEOUT)

    def _acknowledged(self, write: Callable[[Any], Any], client) -> Any:
        if client is not None:
            # The caller's own client or pipeline: it decides whether to wait.
            # (manage.py sessions rewarm does not: it only adds copies of what
            # PostgreSQL holds, with NX, which a failover may lose harmlessly.)
            return write(client)
        pipe = self.get_client(write=True).pipeline(transaction=False)
        write(pipe)
        pipe.execute_command("WAIT", self.replica_acks, self.replica_ack_timeout)
        *results, acks = pipe.execute()
        if acks < self.replica_acks:
            raise ReplicaLagError(f"{acks} of {self.replica_acks} replicas acknowledged a session write")
        return results[0] if results else None

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None, nx=False, xx=False):
        if nx and timeout is not DEFAULT_TIMEOUT and timeout is not None and timeout <= 0:
            # django-redis answers this one with EXISTS and writes nothing.
            return super().set(key, value, timeout, version, client, nx, xx)
        result = self._acknowledged(
            lambda c: super(ReplicatedClient, self).set(key, value, timeout, version, c, nx, xx), client
        )
        return bool(result)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        def write(pipe) -> None:
            for key, value in data.items():
                DefaultClient.set(self, key, value, timeout, version, pipe)

        if data:
            self._acknowledged(write, client)

    def delete(self, key, version=None, prefix=None, client=None):
        return self._acknowledged(lambda c: super(ReplicatedClient, self).delete(key, version, prefix, c), client)

    def delete_many(self, keys, version=None, client=None):
        keys = list(keys)
        if not keys:
            return 0
        return self._acknowledged(lambda c: super(ReplicatedClient, self).delete_many(keys, version, c), client)
