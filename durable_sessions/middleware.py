"""Give sessions their client, and record activity at most once per interval."""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from durable_sessions.backends.cached_db import Client, SessionStore

logger = logging.getLogger(__name__)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """Return the client's address: REMOTE_ADDR, or the trusted proxy header if configured.

    A header any client can send is believed only when CLIENT_IP_HEADER names it,
    and then only the entry the last TRUSTED_PROXY_COUNT proxies appended.
    """
    header = settings.CLIENT_IP_HEADER
    if header:
        value = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        hops = [hop for hop in value.split(",") if hop.strip()]
        if len(hops) >= settings.TRUSTED_PROXY_COUNT:
            ip = _valid_ip(hops[-settings.TRUSTED_PROXY_COUNT])
            if ip:
                return ip
    return _valid_ip(request.META.get("REMOTE_ADDR", ""))


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's session middleware, plus the client and the activity stamp.

    Django's own process_response saves the session and sends the cookie; with
    another engine (benchmarks) this is Django's middleware.
    """

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        self.durable = issubclass(self.SessionStore, SessionStore)

    def process_request(self, request: HttpRequest) -> None:
        if not self.durable:
            return super().process_request(request)
        client = Client(ip_address=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""))
        request.session = self.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME), client=client)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        # A view may have put another engine's session there: only the shop's has stamps.
        if isinstance(session, SessionStore) and response.status_code < 500:
            self._touch_if_due(session)
        return super().process_response(request, response)

    @staticmethod
    def _touch_if_due(session: SessionStore) -> None:
        # Only sessions this request used: probes and static files never load one.
        if not (session.accessed and session.session_key) or session.is_empty():
            return
        try:
            session.record_activity()
        except DatabaseError:
            # The stamp can wait for the next request; the page must not fail for it.
            logger.warning("could not record session activity", exc_info=True)
