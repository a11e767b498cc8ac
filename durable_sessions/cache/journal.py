"""Journal the session cache keys Redis missed, and watch the journal from every process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from datetime import datetime

from django.db import DatabaseError, ProgrammingError, connection, transaction
from django.utils import timezone

from durable_sessions.cache.breaker import Breaker

logger = logging.getLogger(__name__)

REPLAY_BATCH = 500
CHANNEL = "session_cache_journal"


def _journal_model():
    # Imported when called: the cache backend is built before the app registry is ready.
    from durable_sessions.models import SessionCacheJournal

    return SessionCacheJournal


def journal_write(keys: Iterable[str], breaker: Breaker, *, slot_of: Callable[[str], int] | None = None) -> None:
    """Record keys whose write or delete did not reach Redis, and open the breaker.

    ``breaker``: this process's breaker, or anything with its ``trip()`` and
    ``unjournaled`` (a cluster's, which keeps one per primary). ``slot_of``:
    on a cluster, each key's hash slot, recorded with it.
    """
    keys = sorted(set(keys))  # one row per key, locked in one order: no deadlock
    if not keys:
        return
    journal = _journal_model()
    now = timezone.now()
    try:
        with transaction.atomic():
            journal.objects.bulk_create(
                [journal(cache_key=key, failed_at=now, slot=slot_of(key) if slot_of else None) for key in keys],
                update_conflicts=True,
                unique_fields=["cache_key"],
                update_fields=["failed_at", "slot"],
            )
            if connection.vendor == "postgresql":
                # Every process's watcher hears this at once, not at its next look.
                with connection.cursor() as cursor:
                    cursor.execute(f"NOTIFY {CHANNEL}")
    except DatabaseError:
        logger.error("could not journal session cache keys %s; kept in this process", keys, exc_info=True)
        breaker.unjournaled.update(keys)
    breaker.trip()


def journal_replay(
    delete_many: Callable[[list[str]], Collection[str] | None],
    *,
    replayed: Callable[[dict[str, datetime]], None] | None = None,
    skip_slots: Collection[int] = (),
) -> bool:
    """Delete journaled keys from Redis with ``delete_many``; return True once the journal is empty.

    ``delete_many`` may return the keys it could not delete (on a cluster, the
    keys of a primary that does not answer): their rows stay for a later replay.
    ``replayed`` hears the keys deleted from Redis, with when each was journaled.
    ``skip_slots``: on a cluster, slots whose keys are left for a later replay
    (their primary is out of reach), not even read.
    """
    journal = _journal_model()
    after = ""
    while True:
        with transaction.atomic():
            rows = dict(
                journal.objects.select_for_update(skip_locked=True)
                .filter(cache_key__gt=after)
                .exclude(slot__in=list(skip_slots))
                .order_by("cache_key")
                .values_list("cache_key", "failed_at")[:REPLAY_BATCH]
            )
            if not rows:
                break
            left = set(delete_many(list(rows)) or ())
            done = {key: failed_at for key, failed_at in rows.items() if key not in left}
            # The rows are locked: a key journaled again meanwhile waits and
            # is inserted afresh after this commit, for the next replay.
            journal.objects.filter(cache_key__in=list(done)).delete()
            if replayed and done:
                replayed(done)  # deleted from Redis: a rollback here keeps the rows, never a stale copy
            after = max(rows)
    return journal_is_empty()


def journal_slots(slot_of: Callable[[str], int], limit: int) -> set[int] | None:
    """Return the hash slots of the journaled keys; None when more than ``limit`` keys have no slot recorded."""
    journal = _journal_model()
    slots = set(journal.objects.filter(slot__isnull=False).values_list("slot", flat=True).distinct())
    unslotted = list(journal.objects.filter(slot__isnull=True).values_list("cache_key", flat=True)[: limit + 1])
    if len(unslotted) > limit:
        return None
    return slots | {slot_of(key) for key in unslotted}


def journal_times(keys: Collection[str]) -> dict[str, datetime]:
    """Return when each of these keys was last journaled, for those the journal holds."""
    return dict(_journal_model().objects.filter(cache_key__in=list(keys)).values_list("cache_key", "failed_at"))


def journal_is_empty() -> bool:
    return not _journal_model().objects.exists()


class JournalCollector:
    """Report the keys waiting in the journal as a Prometheus gauge, read from PostgreSQL at scrape time."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        pending = GaugeMetricFamily("shop_session_journal_pending", "Session cache keys waiting in the journal.")
        pending.add_metric([], _journal_model().objects.count())
        yield pending


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
            listener.execute(f"LISTEN {CHANNEL}")
            while True:
                self.check()
                for _ in listener.notifies(timeout=self.interval, stop_after=1):
                    self.breaker.trip(probe_now=True, notified=True)

    def check(self) -> None:
        if not journal_is_empty():
            self.breaker.trip(probe_now=True)
