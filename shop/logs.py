"""Give every request an id, log one access line per request, and stamp the id on every log line."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

access_logger = logging.getLogger("shop.access")
request_id: ContextVar[str] = ContextVar("request_id", default="")
# What a client may send as its request id: enough for a trace id or a UUID, nothing that could forge a log line.
REQUEST_ID_FORMAT = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(request: HttpRequest) -> str:
    """Return the request's id: Cloud Run's trace id, else X-Request-ID, else a new one."""
    trace = request.headers.get("X-Cloud-Trace-Context", "").split("/", 1)[0]
    for candidate in (trace, request.headers.get("X-Request-ID", "")):
        if REQUEST_ID_FORMAT.fullmatch(candidate):
            return candidate
    return uuid.uuid4().hex


class AccessLogMiddleware:
    """Log each request once it is answered, with its method, path, status, duration and id.

    At the top of the stack, so probes, static files and refused hosts are
    logged too, and every line logged while the request runs carries its id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Kept until the request is finished (request_id_forget), so Django's own
        # lines after the middleware ("Not Found: ...") carry it too.
        request_id.set(request_id_of(request))
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        response["X-Request-ID"] = request_id.get()
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                '%s "%s %s %s" %s %sms',
                request.META.get("REMOTE_ADDR", "-"),
                request.method,
                request.get_full_path(),
                request.META.get("SERVER_PROTOCOL", "-"),
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
        return response


def request_id_forget(sender, **kwargs) -> None:
    """Receive request_finished: lines logged between requests carry no request's id."""
    request_id.set("")


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True
