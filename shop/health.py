"""Answer liveness and readiness probes."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from durable_sessions.cache.backend import breaker_state, redis_answers
from shop.metrics import metrics

logger = logging.getLogger(__name__)

DATABASE_OK = "ok"
DATABASE_ERROR = "error"
CACHE_OK = "ok"
CACHE_DEGRADED = "degraded"


def healthz(request: HttpRequest) -> HttpResponse:
    """Say the process is alive; touch nothing else."""
    return HttpResponse("ok", content_type="text/plain")


def database_status() -> str:
    """Return whether the default database answers a query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("readiness: database unreachable", exc_info=True)
        return DATABASE_ERROR
    return DATABASE_OK


def session_cache_status() -> str:
    """Return whether the session cache's Redis answers a PING (past the breaker: Redis itself)."""
    return CACHE_OK if redis_answers() else CACHE_DEGRADED


def breaker_status() -> str:
    """Return the session cache breaker's state in this process (closed, open, or none)."""
    return breaker_state() or "none"


# Whether this process has reached the database since it started.
_reached = {"database": False}


def database_reached(sender, **kwargs) -> None:
    """Receive connection_created: this process has reached its database."""
    _reached["database"] = True


def readyz(request: HttpRequest) -> JsonResponse:
    """Say whether this instance can serve: its database must have answered once; Redis need not.

    Until the database has answered this process (a connection made, or this
    probe's query), the instance is not ready: a wrong
    DATABASE_URL or a database not up yet keeps it out of rotation. Once it
    has, a database outage is reported ("database": "error") but the instance
    stays ready: every instance shares the one database, so failing readiness
    would take them all out of the load balancer at once, an outage of its own,
    while each can still serve signed-in shoppers their warm pages from Redis
    and answer changes with a clear 503.
    """
    status = {"database": database_status(), "cache": session_cache_status(), "breaker": breaker_status()}
    if status["database"] == DATABASE_OK:
        _reached["database"] = True
    # Without Redis sessions fall back to PostgreSQL, so the instance stays ready.
    return JsonResponse(status, status=200 if _reached["database"] else 503)


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class HealthCheckMiddleware:
    """Answer probes and metrics scrapes before host validation, HTTPS redirects and sessions.

    Platform probes and Prometheus call the container by its own address over
    plain HTTP, a host that ALLOWED_HOSTS rightly rejects, so these paths are
    answered here, at the top of the stack, and never load a session.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
