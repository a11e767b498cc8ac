"""Read the process environment: the one place the shop does.

Every variable is documented in the README's configuration table. Values are
read once at import; the settings modules and ``gunicorn.conf.py`` decide what
an unset value means for them.
"""

from __future__ import annotations

import environ

from durable_sessions.conf import DEFAULTS as _SESSION_DEFAULTS

_env = environ.Env()

DATABASE_URL: str = _env.str("DATABASE_URL", default="")
REDIS_URL: str = _env.str("REDIS_URL", default="")
# Redis database number of the session cache; defaults to REDIS_URL's number + 1.
REDIS_SESSION_DB: int | None = _env.int("REDIS_SESSION_DB", default=None)
# Redis Sentinel instead of one Redis: "host:port,host:port" and the primary's
# name. REDIS_URL then only carries the database number and password.
REDIS_SENTINELS: list[str] = _env.list("REDIS_SENTINELS", default=[])
REDIS_SENTINEL_MASTER: str = _env.str("REDIS_SENTINEL_MASTER", default="mymaster")
# The sentinels' own password (requirepass in sentinel.conf), if any.
REDIS_SENTINEL_PASSWORD: str = _env.str("REDIS_SENTINEL_PASSWORD", default="")
# Redis Cluster instead of one Redis: "host:port,host:port", seed nodes (any of
# the cluster's). REDIS_URL then carries only the password and options (db 0).
REDIS_CLUSTER_NODES: list[str] = _env.list("REDIS_CLUSTER_NODES", default=[])
# Under Sentinel or on a cluster, a session write counts once this many replicas hold it (WAIT),
# within REDIS_REPLICA_ACK_TIMEOUT milliseconds; 0 turns the wait off.
REDIS_REPLICA_ACKS: int = _env.int("REDIS_REPLICA_ACKS", default=_SESSION_DEFAULTS["REPLICA_ACKS"])
REDIS_REPLICA_ACK_TIMEOUT: int = _env.int("REDIS_REPLICA_ACK_TIMEOUT", default=_SESSION_DEFAULTS["REPLICA_ACK_TIMEOUT"])
SECRET_KEY: str = _env.str("SECRET_KEY", default="")
DEBUG: bool | None = _env.bool("DEBUG", default=None)
ALLOWED_HOSTS: list[str] = _env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS: list[str] = _env.list("CSRF_TRUSTED_ORIGINS", default=[])
# TLS is terminated in front of the shop: redirect to https, secure cookies, HSTS.
HTTPS: bool | None = _env.bool("HTTPS", default=None)
# A statement that waits longer than this for a lock fails (PostgreSQL's lock_timeout,
# milliseconds): a change to a busy session answers 429, anything else 503.
DATABASE_LOCK_TIMEOUT: int = _env.int("DATABASE_LOCK_TIMEOUT", default=2000)
LOG_LEVEL: str = _env.str("LOG_LEVEL", default="INFO").upper()
# "json": one JSON object per line (Cloud Logging reads its severity); "text": plain lines.
# Unset: json in production, text elsewhere.
LOG_FORMAT: str = _env.str("LOG_FORMAT", default="").lower()
# /metrics answers only "Authorization: Bearer <this>"; unset, /metrics is not there (404).
METRICS_TOKEN: str = _env.str("METRICS_TOKEN", default="")
PORT: int = _env.int("PORT", default=8000)
WEB_CONCURRENCY: int = _env.int("WEB_CONCURRENCY", default=2)

# Sessions: idle timeout (sliding), absolute lifetime since sign-in, and how
# often the last-activity stamp may be written, all in seconds; the session
# tier's settings (DURABLE_SESSIONS_*), with the tier's defaults.
SESSION_IDLE_TIMEOUT: int = _env.int("SESSION_IDLE_TIMEOUT", default=_SESSION_DEFAULTS["IDLE_TIMEOUT"])
SESSION_ABSOLUTE_LIFETIME: int = _env.int("SESSION_ABSOLUTE_LIFETIME", default=_SESSION_DEFAULTS["ABSOLUTE_LIFETIME"])
SESSION_ACTIVITY_INTERVAL: int = _env.int("SESSION_ACTIVITY_INTERVAL", default=_SESSION_DEFAULTS["ACTIVITY_INTERVAL"])
# The header a trusted proxy puts the client's address in (e.g. X-Forwarded-For),
# and how many trusted proxies append to it. Unset: REMOTE_ADDR is the client.
CLIENT_IP_HEADER: str = _env.str("CLIENT_IP_HEADER", default="")
TRUSTED_PROXY_COUNT: int = _env.int("TRUSTED_PROXY_COUNT", default=1)
# Outgoing mail (password reset), e.g. smtp+tls://user:password@smtp.example.com:587.
EMAIL_URL: str = _env.str("EMAIL_URL", default="")
DEFAULT_FROM_EMAIL: str = _env.str("DEFAULT_FROM_EMAIL", default="Evergreen Shop <shop@localhost>")
# Session engine and Django's save-on-every-request, for comparing engines in
# benchmarks; the shop's own engine is the one to run.
SESSION_ENGINE: str = _env.str("SESSION_ENGINE", default="durable_sessions.backends.cached_db")
SESSION_SAVE_EVERY_REQUEST: bool = _env.bool("SESSION_SAVE_EVERY_REQUEST", default=False)
# Lock a session while changing it (durable_sessions). "false" only to measure
# what the lock prevents: concurrent changes to one session then lose writes.
SESSION_UPDATE_LOCK: bool = _env.bool("SESSION_UPDATE_LOCK", default=_SESSION_DEFAULTS["UPDATE_LOCK"])
