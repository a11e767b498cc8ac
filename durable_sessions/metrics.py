"""Count what the session tier does, as Prometheus metrics (prometheus-client).

Under gunicorn every worker keeps its own figures; with
``PROMETHEUS_MULTIPROC_DIR`` set (config/gunicorn.conf.py sets it) the
client writes them to files there, and a scrape sums them over the workers.
The journal's size is read from PostgreSQL when scraped (cache.journal's
JournalCollector): one number for every process, not a figure any of them counts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HIT, MISS, ERROR, SKIPPED = "hit", "miss", "error", "skipped"
# Why a session ended (shop_sessions_ended_total's reason, and SessionEnd.reason).
LOGOUT, REVOKED, PASSWORD, EXPIRED, IDLE, LIFETIME = "logout", "revoked", "password", "expired", "idle", "lifetime"
END_REASONS = (LOGOUT, REVOKED, PASSWORD, EXPIRED, IDLE, LIFETIME)

cache_requests = Counter(
    "shop_session_cache_requests", "Session cache reads, by result (skipped: the breaker was open).", ["result"]
)
db_reads = Counter("shop_session_db_reads", "Session loads served by PostgreSQL.")
breaker_open = Gauge(
    "shop_session_breaker_open", "1 while this process's session cache breaker is open.", multiprocess_mode="liveall"
)
breaker_transitions = Counter("shop_session_breaker_transitions", "Session cache breaker changes, by state.", ["to"])
lock_wait = Histogram(
    "shop_session_lock_wait_seconds",
    "Time spent waiting for a session's row lock.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
lock_busy = Counter("shop_session_lock_busy", "Session changes refused because the row lock stayed busy too long.")
sessions_started = Counter("shop_sessions_started", "Sessions started (a sign-in's new key is not a new session).")
sessions_ended = Counter("shop_sessions_ended", "Sessions ended, by reason.", ["reason"])

for _result in (HIT, MISS, ERROR, SKIPPED):
    cache_requests.labels(_result)
for _state in ("open", "closed"):
    breaker_transitions.labels(_state)
for _reason in END_REASONS:
    sessions_ended.labels(_reason)
