"""A session cache that stops calling Redis when it fails and never serves what it failed to change.

Redis is the fast copy of the sessions; PostgreSQL is the truth. Two things can
go wrong when Redis is unreachable, and this backend handles both:

* **Every request paying a timeout.** A circuit breaker per process counts
  consecutive failures; after ``BREAKER_FAIL_MAX`` it opens and the cache
  answers "miss" at once (sessions come from PostgreSQL). Every
  ``BREAKER_RESET_TIMEOUT`` seconds one request probes Redis.
* **Resurrection.** Redis can be unreachable while still holding its data
  (paused, partitioned). A session ended or changed meanwhile must not come back
  from the old copy. Every SET or DELETE that fails, or is skipped while the
  breaker is open, is journaled in PostgreSQL (SessionCacheJournal). A probe
  closes the breaker only after deleting every journaled key from Redis. A
  watcher thread in each process looks at the journal every
  ``JOURNAL_POLL_INTERVAL`` seconds and opens its breaker when the journal is
  not empty, so a process that never saw the outage does not read a stale
  copy either.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db import DatabaseError, ProgrammingError, connection, transaction
from django.utils import timezone
from django_redis.cache import RedisCache
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

REDIS_ERRORS = (ConnectionInterrupted, RedisError, OSError, socket.timeout)
CLOSED, OPEN = "closed", "open"
REPLAY_BATCH = 500
JOURNAL_CHANNEL = "session_cache_journal"


class Breaker:
    """A circuit breaker: closed, or open until a probe succeeds."""

    def __init__(self, *, fail_max: int, reset_timeout: float) -> None:
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        # Bumped by every failure and trip: a probe that started before one
        # must not close the breaker over it.
        self._generation = 0
        self._probe_generation = 0
        # Keys whose journal write failed too: only this process knows them.
        self.unjournaled: set[str] = set()

    @property
    def state(self) -> str:
        return CLOSED if self._opened_at is None else OPEN

    def allows(self) -> bool:
        return self._opened_at is None

    def record_success(self) -> None:
        self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._generation += 1
            self._failures += 1
            if self._failures >= self.fail_max and self._opened_at is None:
                self._opened_at = time.monotonic()
                logger.warning("session cache breaker opened after %d failures", self._failures)

    def trip(self, *, probe_now: bool = False) -> None:
        """Open at once; with ``probe_now`` the next call may probe straight away."""
        with self._lock:
            if not probe_now:
                # This process failed to write a key just now. (The watcher's
                # "journal not empty" is not new: a running probe replays it.)
                self._generation += 1
            if self._opened_at is None:
                logger.warning("session cache breaker opened: the journal holds keys to repair")
                self._opened_at = time.monotonic() - (self.reset_timeout if probe_now else 0)

    def start_probe(self) -> bool:
        """Return True for the one caller that should probe now."""
        with self._lock:
            due = self._opened_at is not None and time.monotonic() - self._opened_at >= self.reset_timeout
            if not due or self._probing:
                return False
            self._probing = True
            self._probe_generation = self._generation
            return True

    def end_probe(self, *, healthy: bool) -> None:
        with self._lock:
            self._probing = False
            if healthy and self._generation == self._probe_generation:
                self._opened_at, self._failures = None, 0
                logger.warning("session cache breaker closed: Redis answers and the journal is empty")
            else:
                self._opened_at = time.monotonic()


class JournalWatcher(threading.Thread):
    """Open this process's breaker whenever any process has journaled a key."""

    def __init__(self, breaker: Breaker, interval: float) -> None:
        super().__init__(name="session-cache-journal-watcher", daemon=True)
        self.breaker, self.interval = breaker, interval

    def run(self) -> None:
        while True:
            try:
                if connection.vendor == "postgresql":
                    self.listen()
                else:
                    time.sleep(self.interval)
                    self.check()
            except ProgrammingError:  # no journal table yet: migrations are running
                logger.info("journal watcher: no journal table yet; trying again")
                connection.close()
                time.sleep(self.interval)
            except Exception:  # the watcher must outlive any failure; it tries again
                logger.info("journal watcher: journal unreadable; trying again", exc_info=True)
                connection.close()  # a fresh connection next time
                time.sleep(self.interval)

    def listen(self) -> None:
        """Trip on every journal notification, and look at the journal between them."""
        import psycopg

        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as listener:
            listener.execute(f"LISTEN {JOURNAL_CHANNEL}")
            while True:
                self.check()
                for _ in listener.notifies(timeout=self.interval, stop_after=1):
                    self.breaker.trip(probe_now=True)

    def check(self) -> None:
        from accounts.models import SessionCacheJournal

        if SessionCacheJournal.objects.exists():
            self.breaker.trip(probe_now=True)


# Per process and Redis location: Django makes one cache object per thread.
_breakers: dict[str, Breaker] = {}
_watchers: dict[str, int] = {}
_registry_lock = threading.Lock()


def breaker_for(location: str, *, fail_max: int, reset_timeout: float, poll_interval: float) -> Breaker:
    with _registry_lock:
        breaker = _breakers.get(location)
        if breaker is None:
            breaker = _breakers[location] = Breaker(fail_max=fail_max, reset_timeout=reset_timeout)
        if poll_interval > 0 and _watchers.get(location) != os.getpid():
            # Started lazily in each process: gunicorn forks after import.
            JournalWatcher(breaker, poll_interval).start()
            _watchers[location] = os.getpid()
        return breaker


def session_cache_breaker_state(cache) -> str | None:
    breaker = getattr(cache, "breaker", None)
    return breaker.state if breaker is not None else None


class ReplicaLagError(RedisError):
    """Fewer replicas than required acknowledged a write in time."""


class ReplicatedClient(DefaultClient):
    """django-redis's client whose writes return once ``REPLICA_ACKS`` replicas hold them.

    Redis replicates asynchronously: a primary that dies right after a write
    can hand over to a replica without it, and the replica would then serve the
    session as it was before. Each write here is sent with a ``WAIT`` in one
    pipeline, on one connection, so it costs no extra round trip. A write fewer
    replicas acknowledged raises ReplicaLagError: the session cache counts it
    as failed and journals the key, so no process reads it until it has been
    deleted again (accounts/cache.py's journal).
    """

    def __init__(self, server, params, backend) -> None:
        super().__init__(server, params, backend)
        self.replica_acks = int(self._options.get("REPLICA_ACKS", 1))
        self.replica_ack_timeout = int(self._options.get("REPLICA_ACK_TIMEOUT", 100))

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


class SessionRedisCache(RedisCache):
    """django-redis behind a breaker, with a journal of changes Redis missed."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = params.setdefault("OPTIONS", {})
        options["IGNORE_EXCEPTIONS"] = False  # failures are handled here, not swallowed below
        super().__init__(server, params)
        self.breaker = breaker_for(
            # One breaker per Redis: a Sentinel location names the primary only.
            f"{server} {options.get('SENTINELS') or ''}",
            fail_max=int(options.get("BREAKER_FAIL_MAX", 3)),
            reset_timeout=float(options.get("BREAKER_RESET_TIMEOUT", 2.0)),
            poll_interval=float(options.get("JOURNAL_POLL_INTERVAL", settings.SESSION_JOURNAL_POLL_INTERVAL)),
        )

    # --- The guard --------------------------------------------------------------------
    def _guarded(self, call: Callable[[], Any], *, default: Any = None, journal: Iterable[str] = ()) -> Any:
        if not self.breaker.allows():
            self._probe()
            if not self.breaker.allows():
                self._journal(journal)
                return default
        try:
            result = call()
        except REDIS_ERRORS:
            logger.warning("session cache call failed; falling back to PostgreSQL", exc_info=True)
            self.breaker.record_failure()
            self._journal(journal)
            return default
        self.breaker.record_success()
        return result

    def _journal(self, keys: Iterable[str]) -> None:
        from accounts.models import SessionCacheJournal

        keys = sorted(set(keys))  # one row per key, locked in one order: no deadlock
        if not keys:
            return
        now = timezone.now()
        try:
            with transaction.atomic():
                SessionCacheJournal.objects.bulk_create(
                    [SessionCacheJournal(cache_key=key, failed_at=now) for key in keys],
                    update_conflicts=True,
                    unique_fields=["cache_key"],
                    update_fields=["failed_at"],
                )
                if connection.vendor == "postgresql":
                    # Every process's watcher hears this at once, not at its next look.
                    with connection.cursor() as cursor:
                        cursor.execute(f"NOTIFY {JOURNAL_CHANNEL}")
        except DatabaseError:
            logger.error("could not journal session cache keys %s; kept in this process", keys, exc_info=True)
            self.breaker.unjournaled.update(keys)
        self.breaker.trip()

    def _probe(self) -> None:
        if not self.breaker.start_probe():
            return
        healthy = False
        try:
            self.client.get_client(write=True).ping()
            if self.breaker.unjournaled:
                pending = set(self.breaker.unjournaled)
                super().delete_many(list(pending))
                self.breaker.unjournaled -= pending
            healthy = self._replay_journal() and not self.breaker.unjournaled
        except REDIS_ERRORS:
            logger.info("session cache probe: Redis still unreachable")
        except DatabaseError:
            logger.warning("session cache probe: journal unreadable", exc_info=True)
        finally:
            self.breaker.end_probe(healthy=healthy)

    def _replay_journal(self) -> bool:
        """Delete journaled keys from Redis; return True once the journal is empty."""
        from accounts.models import SessionCacheJournal

        while True:
            with transaction.atomic():
                rows = list(
                    SessionCacheJournal.objects.select_for_update(skip_locked=True)
                    .order_by("failed_at")
                    .values_list("cache_key", flat=True)[:REPLAY_BATCH]
                )
                if not rows:
                    break
                keys = list(rows)
                super().delete_many(keys)
                # The rows are locked: a key journaled again meanwhile waits and
                # is inserted afresh after this commit, for the next replay.
                SessionCacheJournal.objects.filter(cache_key__in=keys).delete()
        return not SessionCacheJournal.objects.exists()

    # --- The cache API cached_db and the shop use ---------------------------------------
    def get(self, key, default=None, version=None, client=None):
        return self._guarded(lambda: super(SessionRedisCache, self).get(key, default, version, client), default=default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None, nx=False, xx=False):
        return self._guarded(
            lambda: super(SessionRedisCache, self).set(key, value, timeout, version, client, nx, xx),
            default=False,
            journal=[key],
        )

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        # A failed ADD leaves nothing newer behind than what Redis had: no journal.
        return self._guarded(
            lambda: super(SessionRedisCache, self).add(key, value, timeout, version, client), default=False
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
            lambda: super(SessionRedisCache, self).delete(key, version, prefix, client), default=False, journal=[key]
        )

    def delete_many(self, keys, version=None):
        keys = list(keys)
        return self._guarded(lambda: super(SessionRedisCache, self).delete_many(keys, version), default=0, journal=keys)

    def has_key(self, key, version=None, client=None):
        return self._guarded(lambda: super(SessionRedisCache, self).has_key(key, version, client), default=False)

    def get_many(self, keys, version=None, client=None):
        return self._guarded(lambda: super(SessionRedisCache, self).get_many(keys, version, client), default={})
