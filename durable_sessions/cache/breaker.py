"""Stop calling a Redis that keeps failing, probe it once in a while, and let writes back in first."""

from __future__ import annotations

import logging
import threading
import time
import weakref

from durable_sessions import metrics

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
# How soon a half-open breaker probes again (seconds, at most its reset timeout): the
# journal it waits to see empty is emptied by every process's probes within moments.
HALF_OPEN_PROBE_INTERVAL = 0.25

# This process's breakers in use (one per Redis, or per primary of a cluster):
# the gauge says 1 while any of them is open.
_live: weakref.WeakSet[Breaker] = weakref.WeakSet()
_live_lock = threading.Lock()  # a WeakSet changed while another thread iterates it raises


class Breaker:
    """A circuit breaker: closed; open until a probe reaches Redis; half-open until the journal is empty.

    Half-open, writes go to Redis again (a write that fails opens it again)
    while reads still come from PostgreSQL. Without that step, under steady
    traffic every open process keeps journaling the writes it skips, every
    probe finds the journal refilled, and no breaker closes.
    """

    def __init__(self, *, fail_max: int, reset_timeout: float, name: str = "") -> None:
        self.name = name  # the primary it guards, on a cluster
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._half_open = False
        self._probing = False
        # Bumped by every failure and trip: a probe that started before one
        # must not close the breaker over it.
        self._generation = 0
        self._probe_generation = 0
        # Journal notifications heard (the watcher's), and how many when the probe started.
        self._notifications = 0
        self._probe_notifications = 0
        # Keys whose journal write failed too: only this process knows them.
        self.unjournaled: set[str] = set()
        with _live_lock:
            _live.add(self)

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self._half_open else OPEN

    def allows(self) -> bool:
        """Whether reads may go to Redis: only while closed."""
        return self._opened_at is None

    def allows_writes(self) -> bool:
        """Whether writes may go to Redis: while closed or half-open."""
        return self._opened_at is None or self._half_open

    def record_success(self) -> None:
        self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._generation += 1
            self._failures += 1
            if self._half_open:
                self._reopen()
            elif self._failures >= self.fail_max and self._opened_at is None:
                self._opened_at = time.monotonic()
                _opened()
                logger.warning("session cache breaker%s opened after %d failures", self._of, self._failures)

    def trip(self, *, probe_now: bool = False, notified: bool = False) -> None:
        """Open at once; with ``probe_now`` the next call may probe straight away.

        ``notified``: another process has just journaled a key. A probe running
        now may have looked at the journal before that key was there: it must
        not close the breaker over it.
        """
        with self._lock:
            if notified:
                self._notifications += 1
            if not probe_now:
                # This process failed to write a key just now. (The watcher's
                # "journal not empty" is not new: a running probe replays it.)
                self._generation += 1
                if self._half_open:
                    self._reopen()
            if self._opened_at is None:
                logger.warning("session cache breaker%s opened: the journal holds keys to repair", self._of)
                self._opened_at = time.monotonic() - (self.reset_timeout if probe_now else 0)
                _opened()

    def start_probe(self) -> bool:
        """Return True for the one caller that should probe now."""
        with self._lock:
            wait = min(self.reset_timeout, HALF_OPEN_PROBE_INTERVAL) if self._half_open else self.reset_timeout
            due = self._opened_at is not None and time.monotonic() - self._opened_at >= wait
            if not due or self._probing:
                return False
            self._probing = True
            self._probe_generation, self._probe_notifications = self._generation, self._notifications
            return True

    def reached(self) -> None:
        """The probe reached Redis: writes may go there again while it repairs the journal (half-open)."""
        with self._lock:
            if self._opened_at is not None and self._generation == self._probe_generation:
                self._half_open = True

    def end_probe(self, *, healthy: bool) -> None:
        with self._lock:
            self._probing = False
            unchanged = (self._generation, self._notifications) == (self._probe_generation, self._probe_notifications)
            if healthy and unchanged:
                self._opened_at, self._failures, self._half_open = None, 0, False
                _report()
                metrics.breaker_transitions.labels("closed").inc()
                logger.warning("session cache breaker%s closed: Redis answers and the journal is empty", self._of)
            else:
                self._opened_at = time.monotonic()

    def _reopen(self) -> None:
        # Called with the lock held: a write failed while half-open.
        self._half_open = False
        self._opened_at = time.monotonic()
        logger.warning("session cache breaker%s open again: a write failed while half-open", self._of)

    def retire(self) -> None:
        """Stop counting this breaker in the gauge: its primary serves no slot any more (a failover)."""
        with _live_lock:
            _live.discard(self)
        _report()

    @property
    def _of(self) -> str:
        return f" of {self.name}" if self.name else ""


def _opened() -> None:
    _report()
    metrics.breaker_transitions.labels("open").inc()


def _report() -> None:
    with _live_lock:
        breakers = list(_live)
    metrics.breaker_open.set(int(any(breaker._opened_at is not None for breaker in breakers)))
