"""Stop calling a Redis that keeps failing, and probe it once in a while."""

from __future__ import annotations

import logging
import threading
import time

from durable_sessions import metrics

logger = logging.getLogger(__name__)

CLOSED, OPEN = "closed", "open"


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
                _opened()
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
                _opened()

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
                metrics.breaker_open.set(0)
                metrics.breaker_transitions.labels("closed").inc()
                logger.warning("session cache breaker closed: Redis answers and the journal is empty")
            else:
                self._opened_at = time.monotonic()


def _opened() -> None:
    metrics.breaker_open.set(1)
    metrics.breaker_transitions.labels("open").inc()
