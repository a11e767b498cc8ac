"""Time every request by view, and serve the process's metrics to Prometheus on /metrics."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from durable_sessions.cache.journal import JournalCollector

# Labels by view name, never by URL: one series per page, whatever the product or order.
request_duration = Histogram(
    "shop_http_request_duration_seconds",
    "Time to answer a request, by view, method and status.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestMetricsMiddleware:
    """Observe each request's duration under its view's name (``unrouted`` for what no URL matched)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        view = match.view_name if match else "unrouted"
        method = request.method if request.method in METHODS else "other"
        request_duration.labels(view, method, str(response.status_code)).observe(time.perf_counter() - started)
        return response


def metrics(request: HttpRequest) -> HttpResponse:
    """Answer a scrape with ``Authorization: Bearer $METRICS_TOKEN``; 404 without a token set, 401 with a wrong one."""
    token = settings.METRICS_TOKEN
    if not token:
        # Answered before the rest of the stack (a probe path): no error page, nothing else loaded.
        return HttpResponseNotFound("Not found.\n", content_type="text/plain")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("A valid bearer token is needed.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    journal = CollectorRegistry()
    journal.register(JournalCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every gunicorn worker's figures, summed (or per process for this process's gauges).
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(journal)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
