"""The guarded session cache on a Redis Cluster: a breaker per primary, and the journal kept per slot.

On one Redis, one breaker stands for the whole cache, and a journal that is
not empty opens it: until the journal is replayed, no session is read from
Redis. On a cluster that would make one primary that does not answer, or one
key its shard failed to take, cost every shard its cache. Here:

* **A breaker per primary** counts that primary's failures only; the others
  keep serving. Its probe first asks the cluster who owns which slots: after
  a failover its slots belong to the promoted replica, which has a breaker of
  its own, and the old primary's is retired.
* **Slots with journaled keys** are read from PostgreSQL until the journal is
  replayed, whichever primary serves them by then. A slot is a key's place
  across a failover and a resharding, a primary is not: a write the old
  primary missed, or that its replica never acknowledged, is never read from
  the replica promoted in its place. A replica's missing acknowledgement
  journals the key without counting against the primary, which answered.
* **The replay** deletes each primary's journaled keys on that primary; the
  keys of a primary that does not answer stay journaled for a later replay.
  A request that meets a journaled slot runs it (one at a time, every
  HALF_OPEN_PROBE_INTERVAL at most); each process's journal watcher marks
  the slots other processes journaled.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils import timezone
from redis.cluster import RedisCluster
from redis.crc import key_slot

from durable_sessions.cache.backend import REDIS_ERRORS, SessionRedisCache
from durable_sessions.cache.breaker import CLOSED, HALF_OPEN, HALF_OPEN_PROBE_INTERVAL, OPEN, Breaker
from durable_sessions.cache.cluster import slots_refresh
from durable_sessions.cache.journal import (
    JournalWatcher,
    journal_replay,
    journal_slots,
    journal_times,
    journal_write,
)
from durable_sessions.cache.replication import ReplicaLagError
from durable_sessions.conf import app_settings

logger = logging.getLogger(__name__)

# Past this many journaled keys without a slot recorded (journaled on one Redis, before a move to a
# cluster), every slot counts as journaled; so do this many keys marked here.
JOURNAL_SLOTS_LIMIT = 10_000
ALL_SLOTS = frozenset(range(16384))
# A key journaled here that the journal never showed is forgotten after this long (seconds): the
# transaction that journaled it rolled back (and with it the change Redis missed).
MARK_LIFETIME = timedelta(minutes=10)

# The breaker of keys whose slot no primary serves (mid-failover), or of a cluster no node of which has answered.
NO_PRIMARY = "(no primary)"

_guards: dict[str, ShardGuard] = {}
_guards_lock = threading.Lock()


class ShardGuard:
    """One process's breakers (one per primary) and journaled slots for one cluster.

    It stands where one Redis has its ``Breaker``: ``state``, ``allows()`` and
    ``unjournaled`` describe the whole cluster, for /readyz, the overview and
    the journal.
    """

    def __init__(self, make_key: Callable[[str], Any]) -> None:
        self.make_key = make_key
        self.breakers: dict[str, Breaker] = {}
        self.journaled: frozenset[int] = frozenset()
        self.unjournaled: set[str] = set()
        self._lock = threading.Lock()
        self._marked: dict[str, datetime] = {}  # journaled here, when, and not yet shown by the journal
        self._epoch = 0  # bumped by every look of the watcher
        self.watcher_pid: int | None = None
        self._repairing = False
        self._repaired_at = 0.0

    # --- Breakers per primary -----------------------------------------------------------
    def breaker(self, node_name: str) -> Breaker:
        with self._lock:
            breaker = self.breakers.get(node_name)
            if breaker is None:
                breaker = self.breakers[node_name] = Breaker(
                    fail_max=int(app_settings.BREAKER_FAIL_MAX),
                    reset_timeout=float(app_settings.BREAKER_RESET_TIMEOUT),
                    name=node_name,
                )
            return breaker

    def retire_all_but(self, primaries: set[str]) -> None:
        """Forget the breakers of nodes that serve no slot any more (failed over, or emptied by a resharding)."""
        with self._lock:
            for name in set(self.breakers) - primaries:
                self.breakers.pop(name).retire()

    @property
    def state(self) -> str:
        states = {breaker.state for breaker in list(self.breakers.values())}
        return OPEN if OPEN in states else HALF_OPEN if HALF_OPEN in states else CLOSED

    def allows(self) -> bool:
        """Whether every key may be read from the cluster: no primary's breaker open, no slot journaled."""
        return self.state == CLOSED and not self.journaled

    # --- Journaled slots ----------------------------------------------------------------
    def slot(self, key: str) -> int:
        return key_slot(str(self.make_key(key)).encode())

    def is_journaled(self, key: str) -> bool:
        return bool(self.journaled) and self.slot(key) in self.journaled

    def mark(self, keys: Iterable[str]) -> None:
        """Count these keys' slots as journaled at once, in this process (the journal says so to the others).

        A key's row commits with the transaction that journaled it, which may
        be a session's locked change still running: until the journal shows
        that row (or a replay deletes the key after it), the mark stands in
        for it here.
        """
        keys = list(keys)
        now = timezone.now()
        with self._lock:
            for key in keys:
                self._marked[key] = now
            self.journaled = self.journaled | {self.slot(key) for key in keys}

    def trip(self, *, probe_now: bool = False, notified: bool = False) -> None:
        """What the journal calls: a key was journaled here (``mark`` has it), or the watcher saw some."""
        if probe_now:
            self._look(after_replay=False)

    def load(self) -> None:
        """Read again which slots hold journaled keys, after a replay: slots it emptied are served again."""
        self._look(after_replay=True)

    def replayed(self, keys: dict[str, datetime]) -> None:
        """Forget the marks of keys a replay deleted from Redis after they were journaled here."""
        with self._lock:
            for key, journaled_at in keys.items():
                if key in self._marked and journaled_at >= self._marked[key]:
                    del self._marked[key]

    def _look(self, *, after_replay: bool) -> None:
        """Read the journal's slots. Only a look after a replay may drop slots, and not those the watcher
        added while it read (another process journaled them meanwhile)."""
        with self._lock:
            epoch, marked = self._epoch, list(self._marked)
        slots = journal_slots(self.slot, JOURNAL_SLOTS_LIMIT)
        times = journal_times(marked) if len(marked) <= JOURNAL_SLOTS_LIMIT else {}
        now = timezone.now()
        with self._lock:
            for key, at in list(self._marked.items()):
                shown = key in times and times[key] >= at  # its row is committed: the journal speaks for it
                if shown or now - at > MARK_LIFETIME:  # or its transaction rolled back, with what Redis missed
                    del self._marked[key]
            found = ALL_SLOTS if slots is None else frozenset(slots)
            found |= {self.slot(key) for key in (*self._marked, *self.unjournaled)}
            if not after_replay or self._epoch != epoch:
                found |= self.journaled
            if not after_replay:
                self._epoch += 1
            self.journaled = found

    def start_repair(self) -> bool:
        """Return True for the one caller that should replay the journal now."""
        with self._lock:
            if self._repairing or time.monotonic() - self._repaired_at < HALF_OPEN_PROBE_INTERVAL:
                return False
            self._repairing = True
            return True

    def end_repair(self) -> None:
        with self._lock:
            self._repairing, self._repaired_at = False, time.monotonic()


def _guard_for(location: str, make_key: Callable[[str], Any]) -> ShardGuard:
    with _guards_lock:
        guard = _guards.get(location)
        if guard is None:
            guard = _guards[location] = ShardGuard(make_key)
        interval = float(app_settings.JOURNAL_POLL_INTERVAL)
        if interval > 0 and guard.watcher_pid != os.getpid():
            # Started in each process: gunicorn forks after import.
            JournalWatcher(guard, interval).start()
            guard.watcher_pid = os.getpid()
        return guard


class ClusterSessionCache(SessionRedisCache):
    """The guarded session cache on a cluster: each key asks its own primary's breaker and its slot's journal."""

    def _breaker(self, server: str, options: dict[str, Any]) -> ShardGuard:
        nodes = ",".join(f"{host}:{port}" for host, port in options["CLUSTER_NODES"])
        return _guard_for(f"{server} {nodes}", self.make_key)

    @property
    def shards(self) -> ShardGuard:
        return self.breaker

    # --- Routing ------------------------------------------------------------------------
    def _primary(self, key: str) -> str | None:
        """Name the primary this process believes serves ``key``'s slot (None: no primary serves it)."""
        cluster = self._cluster()
        nodes = cluster.nodes_manager.slots_cache.get(self.shards.slot(key)) if cluster else None
        return nodes[0].name if nodes else None

    def _cluster(self) -> RedisCluster | None:
        """Return this process's cluster client; None while no seed node has answered (not asked again each call)."""
        if self.client._clients[0] is None and not self._node_breaker(None).allows_writes():
            return None  # the "(no primary)" breaker's probe tries again
        try:
            return self._redis()
        except REDIS_ERRORS:
            logger.warning("session cache: no node of the cluster answers", exc_info=True)
            self._node_breaker(None).record_failure()
            return None

    def _by_primary(self, keys: Iterable[str]) -> dict[str | None, list[str]]:
        groups: dict[str | None, list[str]] = defaultdict(list)
        for key in keys:
            groups[self._primary(key)].append(key)
        return groups

    def _breaker_of(self, key: str) -> Breaker:
        return self._node_breaker(self._primary(key))

    def _node_breaker(self, name: str | None) -> Breaker:
        # A slot no primary serves (mid-failover) counts against a breaker of its own, probed like any other.
        return self.shards.breaker(name or NO_PRIMARY)

    # --- The guard, per primary ---------------------------------------------------------
    def _failed(self, breaker: Breaker, error: Exception) -> None:
        if not isinstance(error, ReplicaLagError):  # a lagging replica is no failure of the primary
            breaker.record_failure()

    def _journal(self, keys: Iterable[str], breaker: Breaker) -> None:
        keys = list(keys)
        if keys:
            self.shards.mark(keys)
            journal_write(keys, self.shards, slot_of=self.shards.slot)

    def _probe(self, breaker: Breaker) -> None:
        """Ask the cluster who serves which slots, then PING the breaker's primary if it still serves some."""
        if not breaker.start_probe():
            return
        healthy = False
        try:
            cluster: RedisCluster = self._redis()
            slots_refresh(cluster)
            primaries = {node.name for node in cluster.get_primaries()}
            self.shards.retire_all_but(primaries | {NO_PRIMARY})
            node = cluster.get_node(node_name=breaker.name) if breaker.name in primaries else None
            if node is not None:
                cluster.get_redis_connection(node).ping()
                breaker.reached()
            healthy = True  # it answers, or its slots moved elsewhere
        except REDIS_ERRORS:
            logger.info("session cache probe: primary %s still unreachable", breaker.name)
        except Exception:  # a probe never fails the request that runs it
            logger.warning("session cache probe of %s failed", breaker.name, exc_info=True)
        finally:
            breaker.end_probe(healthy=healthy)

    def _repair(self) -> None:
        """Replay the journal, each primary's keys on it, then read again which slots are journaled."""
        shards = self.shards
        if not shards.start_repair():
            return
        try:
            if shards.unjournaled:
                pending = set(shards.unjournaled)
                shards.unjournaled -= pending - set(self._replay_delete(list(pending)))
            journal_replay(self._replay_delete, replayed=shards.replayed, skip_slots=self._unreachable_slots())
            shards.load()
        except Exception:  # the journal unreadable, or anything else: a repair never fails its request
            logger.warning("session cache repair failed; slots stay journaled", exc_info=True)
        finally:
            shards.end_repair()

    def _unreachable_slots(self) -> list[int]:
        """The slots of the primaries whose breaker is open: a replay leaves their keys alone, unread."""
        closed = {name for name, breaker in self.shards.breakers.items() if not breaker.allows_writes()}
        cluster = self._cluster() if closed else None
        if cluster is None:
            return []
        return [slot for slot, nodes in list(cluster.nodes_manager.slots_cache.items()) if nodes[0].name in closed]

    def _replay_delete(self, keys: list[str]) -> list[str]:
        """Delete keys on their primaries; return those whose primary is skipped or failed."""
        left: list[str] = []
        for name, node_keys in self._by_primary(keys).items():
            breaker = self._node_breaker(name)
            if not breaker.allows_writes():
                left += node_keys  # out of reach (a read of one of its keys probes it): the next replay
                continue
            try:
                SessionRedisCache._replay_delete(self, node_keys)
            except REDIS_ERRORS as error:
                logger.info("session cache repair: %d keys left on %s (%s)", len(node_keys), name, error)
                self._failed(breaker, error)
                left += node_keys
        return left

    def _readable(self, key: str) -> bool:
        """Not while ``key``'s slot is journaled: replay the journal first, once its primary answers."""
        if self.shards.is_journaled(key):
            breaker = self._breaker_of(key)
            if not breaker.allows_writes():
                self._probe(breaker)  # reads of journaled keys never reach the guard: probe here
            if not breaker.allows_writes():
                return False  # its primary is out of reach: no replay could repair this key now
            self._repair()
            if self.shards.is_journaled(key):
                return False
        return True

    # --- The cache API, many keys: a call per primary -----------------------------------
    def get_many(self, keys, version=None, client=None):
        found: dict = {}
        readable = [key for key in keys if self._readable(key)]
        for name, node_keys in self._by_primary(readable).items():
            found.update(
                self._guarded(
                    lambda node_keys=node_keys: super(SessionRedisCache, self).get_many(node_keys, version, client),
                    default={},
                    read=True,
                    breaker=self._node_breaker(name),
                )
            )
        return found

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None, client=None):
        data = dict(data)
        failed: list[str] = []
        for name, node_keys in self._by_primary(data).items():
            part = {key: data[key] for key in node_keys}
            failed += (
                self._guarded(
                    lambda part=part: super(SessionRedisCache, self).set_many(part, timeout, version, client),
                    default=list(part),
                    journal=list(part),
                    breaker=self._node_breaker(name),
                )
                or []
            )
        return failed

    def delete_many(self, keys, version=None):
        deleted = 0
        for name, node_keys in self._by_primary(keys).items():
            deleted += self._guarded(
                lambda node_keys=node_keys: super(SessionRedisCache, self).delete_many(node_keys, version),
                default=0,
                journal=node_keys,
                breaker=self._node_breaker(name),
            )
        return deleted


