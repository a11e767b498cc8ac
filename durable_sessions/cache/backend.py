"""The session cache: django-redis behind a breaker, with a journal of the changes Redis missed."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db import DatabaseError
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisClusterException, RedisError

from durable_sessions import metrics
from durable_sessions.cache.breaker import Breaker
from durable_sessions.cache.journal import JournalWatcher, journal_replay, journal_write
from durable_sessions.conf import app_settings
from durable_sessions.sealing import seal
from durable_sessions.stamps import ENDED

logger = logging.getLogger(__name__)

# RedisClusterException (a slot no primary serves during a failover, no node reachable) is no RedisError.
REDIS_ERRORS = (ConnectionInterrupted, RedisError, RedisClusterException, OSError, socket.timeout)
EXISTS_BATCH = 1000
_MISSING = object()

# Per process and Redis location: Django makes one cache object per thread.
_breakers: dict[str, Breaker] = {}
_watchers: dict[str, int] = {}
_registry_lock = threading.Lock()


def _breaker_for(location: str) -> Breaker:
    with _registry_lock:
        breaker = _breakers.get(location)
        if breaker is None:
            breaker = _breakers[location] = Breaker(
                fail_max=int(app_settings.BREAKER_FAIL_MAX),
                reset_timeout=float(app_settings.BREAKER_RESET_TIMEOUT),
            )
        interval = float(app_settings.JOURNAL_POLL_INTERVAL)
        if interval > 0 and _watchers.get(location) != os.getpid():
            # Started lazily in each process: gunicorn forks after import.
            JournalWatcher(breaker, interval).start()
            _watchers[location] = os.getpid()
        return breaker


class SessionRedisCache(RedisCache):
    """django-redis behind a breaker, with a journal of changes Redis missed.

    The cache API Django's cached_db and the store use answers as a miss (or a
    failed write, journaled) when Redis fails; the few calls that need Redis
    itself (``ping``, ``count_present``, ``add_many``) are here too, so the
    raw client is reached in this class only.
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = params.setdefault("OPTIONS", {})
        options["IGNORE_EXCEPTIONS"] = False  # failures are handled here, not swallowed below
        super().__init__(server, params)
        self.breaker = self._breaker(server, options)

    def _breaker(self, server: str, options: dict[str, Any]) -> Breaker:
        # One breaker per Redis: a Sentinel location names the primary only.
        return _breaker_for(f"{server} {options.get('SENTINELS') or ''}")

    def _redis(self):
        return self.client.get_client(write=True)

    # --- The guard --------------------------------------------------------------------
    def _guarded(
        self,
        call: Callable[[], Any],
        *,
        key: str | None = None,
        default: Any = None,
        journal: Iterable[str] = (),
        read: bool = False,
        counted: bool = False,
        breaker: Breaker | None = None,
    ) -> Any:
        """Call Redis unless the breaker says not to; on failure count it, journal ``journal`` and return ``default``.

        ``key``: the one key the call reads or writes, which picks its breaker.
        ``read``: a read, which needs a closed breaker (writes go to Redis half-open too).
        ``counted``: a session read, counted in shop_session_cache_requests_total.
        ``breaker``: the one to ask, for a call over several keys of one primary (a cluster).
        """
        if breaker is None:
            breaker = self.breaker if key is None else self._breaker_of(key)
        if read and key is not None and not self._readable(key):
            if counted:
                metrics.cache_requests.labels(metrics.SKIPPED).inc()
            return default
        permitted = breaker.allows if read else breaker.allows_writes
        if not permitted():
            self._probe(breaker)
            if not permitted():
                if counted:
                    metrics.cache_requests.labels(metrics.SKIPPED).inc()
                self._journal(journal, breaker)
                return default
        try:
            result = call()
        except REDIS_ERRORS as error:
            logger.warning("session cache call failed; falling back to PostgreSQL", exc_info=True)
            if counted:
                metrics.cache_requests.labels(metrics.ERROR).inc()
            self._failed(breaker, error)
            self._journal(journal, breaker)
            return default
        breaker.record_success()
        return result

    def _breaker_of(self, key: str) -> Breaker:
        """The breaker guarding ``key``: this cache's own (a cluster keeps one per primary)."""
        return self.breaker

    def _readable(self, key: str) -> bool:
        """Whether ``key`` may be read past its breaker (a cluster keeps journaled slots aside)."""
        return True

    def _failed(self, breaker: Breaker, error: Exception) -> None:
        breaker.record_failure()

    def _journal(self, keys: Iterable[str], breaker: Breaker) -> None:
        journal_write(keys, breaker)

    def _probe(self, breaker: Breaker) -> None:
        if not breaker.start_probe():
            return
        healthy = False
        try:
            self._redis().ping()
            breaker.reached()
            if breaker.unjournaled:
                pending = set(breaker.unjournaled)
                super().delete_many(list(pending))
                breaker.unjournaled -= pending
            healthy = journal_replay(self._replay_delete)
            healthy = healthy and not breaker.unjournaled
        except REDIS_ERRORS:
            logger.info("session cache probe: Redis still unreachable")
        except DatabaseError:
            logger.warning("session cache probe: journal unreadable", exc_info=True)
        finally:
            breaker.end_probe(healthy=healthy)

    def _replay_delete(self, keys: list[str]) -> None:
        super().delete_many(keys)

    # --- Redis itself -------------------------------------------------------------------
    def ping(self) -> None:
        """PING Redis, past the breaker (it reports Redis itself); raise what Redis raises."""
        self._redis().ping()

    def count_present(self, keys: list[str]) -> int:
        """Return how many of these cache keys Redis holds, in pipelines of EXISTS."""
        redis, found = self._redis(), 0
        for start in range(0, len(keys), EXISTS_BATCH):
            pipe = redis.pipeline(transaction=False)
            for key in keys[start : start + EXISTS_BATCH]:
                pipe.exists(self.make_key(key))
            found += sum(pipe.execute())
        return found

    def add_many(self, entries: Iterable[tuple[str, Any, int]]) -> None:
        """ADD (SET NX) each (key, value, timeout) in one pipeline: a newer copy is never overwritten."""
        pipe = self._redis().pipeline(transaction=False)
        for key, value, timeout in entries:
            self.client.set(key, value, timeout, client=pipe, nx=True)
        pipe.execute()

    # --- The cache API cached_db and the shop use ---------------------------------------
    def get(self, key, default=None, version=None, client=None):
        def read():
            value = super(SessionRedisCache, self).get(key, _MISSING, version, client)
            metrics.cache_requests.labels(metrics.MISS if value is _MISSING else metrics.HIT).inc()
            return default if value is _MISSING else value

        return self._guarded(read, key=key, default=default, read=True, counted=True)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None, nx=False, xx=False):
        return self._guarded(
            lambda: super(SessionRedisCache, self).set(key, value, timeout, version, client, nx, xx),
            key=key,
            default=False,
            journal=[key],
        )

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        # A failed ADD leaves nothing newer behind than what Redis had: no journal. It
        # re-caches what a reader found in PostgreSQL, so like a read it waits for a
        # closed breaker: half-open, it could land after the replay deleted a key
        # another process changed meanwhile, and put the older copy back.
        return self._guarded(
            lambda: super(SessionRedisCache, self).add(key, value, timeout, version, client),
            key=key,
            default=False,
            read=True,
        )

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        data = dict(data)
        return self._guarded(
            lambda: super(SessionRedisCache, self).set_many(data, timeout, version, client),
            default=list(data),
            journal=list(data),
        )

    def delete(self, key, version=None, prefix=None, client=None):
        return self._guarded(
            lambda: super(SessionRedisCache, self).delete(key, version, prefix, client),
            key=key,
            default=False,
            journal=[key],
        )

    def delete_many(self, keys, version=None):
        keys = list(keys)
        return self._guarded(lambda: super(SessionRedisCache, self).delete_many(keys, version), default=0, journal=keys)

    def has_key(self, key, version=None, client=None):
        return self._guarded(
            lambda: super(SessionRedisCache, self).has_key(key, version, client), key=key, default=False, read=True
        )

    def get_many(self, keys, version=None, client=None):
        return self._guarded(
            lambda: super(SessionRedisCache, self).get_many(keys, version, client), default={}, read=True
        )


def tombstones_write(storage_keys: Iterable[str], *, cache) -> None:
    """Mark sessions ended in the session cache, for as long as their cookies could live.

    The one place tombstones are written: by an end (after its commit) and by a
    locked change that finds its row gone (at once). A tombstone is read as "no
    session" without asking PostgreSQL, and neither a late write nor a re-cache
    (ADD) can bring the session back.
    """
    entries = {KEY_PREFIX + key: seal(KEY_PREFIX + key, ENDED) for key in storage_keys}
    if not entries:
        return
    try:
        cache.set_many(entries, settings.SESSION_COOKIE_AGE)
    except Exception:
        # As Django's cached_db logs a failed cache write (the session cache may be another backend).
        logging.getLogger("django.contrib.sessions").exception("Error saving to cache (%s)", cache)


def session_cache():
    """Return the session cache (SESSION_CACHE_ALIAS) of this thread."""
    return caches[settings.SESSION_CACHE_ALIAS]


def breaker_state() -> str | None:
    """Return this process's session cache breaker state, or None when the cache has none."""
    cache = session_cache()
    return cache.breaker.state if isinstance(cache, SessionRedisCache) else None


def redis_answers() -> bool:
    """Return whether the session cache's Redis answers a PING (an in-process cache always does)."""
    cache = session_cache()
    if not isinstance(cache, SessionRedisCache):
        return True
    try:
        cache.ping()
    except Exception:  # any failure means "does not answer", never an error of the caller
        logger.warning("session cache unreachable", exc_info=True)
        return False
    return True
