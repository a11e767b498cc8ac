"""Give sessions their client, and record activity at most once per interval."""

from __future__ import annotations

import ipaddress
import logging
import re

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import TemplateDoesNotExist

from durable_sessions.backends.cached_db import Client, SessionStore
from durable_sessions.conf import app_settings
from durable_sessions.locking import SessionBusy

logger = logging.getLogger(__name__)

# What Django's session keys look like (32 of VALID_KEY_CHARS). A cookie that
# does not is none the shop issued: it is treated as no cookie at all, so odd
# bytes never reach a query and a made-up value never names anything stored.
SESSION_KEY_FORMAT = re.compile(r"[a-z0-9]{32}")
# How long a client refused with SessionBusy should wait before trying again (seconds).
BUSY_RETRY_AFTER = 1
BUSY_MESSAGE = "Your basket is busy with another change. Nothing was changed: please try again in a moment."


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
        session_key = self._cookie(request, settings.SESSION_COOKIE_NAME)
        if not self.durable:
            request.session = self.SessionStore(session_key)
            return
        client = Client(ip_address=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""))
        previous = app_settings.PREVIOUS_COOKIE_NAME
        if session_key is None and previous and previous != settings.SESSION_COOKIE_NAME:
            session_key = self._cookie(request, previous)
            request.session = self.SessionStore(session_key, client=client, moves_cookie=session_key is not None)
            return
        request.session = self.SessionStore(session_key, client=client)

    @staticmethod
    def _cookie(request: HttpRequest, name: str) -> str | None:
        value = request.COOKIES.get(name)
        return value if value is not None and SESSION_KEY_FORMAT.fullmatch(value) else None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer a change refused because its session's lock stayed busy: 429, try again shortly."""
        if not isinstance(exception, SessionBusy):
            return None
        try:
            response = render(request, "429.html", {"message": BUSY_MESSAGE}, status=429)
        except TemplateDoesNotExist:
            response = HttpResponse(BUSY_MESSAGE, status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(BUSY_RETRY_AFTER)
        return response

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        # A view may have put another engine's session there: only the shop's has stamps.
        # Not after a 429 either: the session's lock is busy, and the stamp can wait.
        if isinstance(session, SessionStore) and response.status_code < 500 and response.status_code != 429:
            self._touch_if_due(session)
            if session.moves_cookie:
                self._move_cookie(session, response)
        return super().process_response(request, response)

    @staticmethod
    def _move_cookie(session: SessionStore, response: HttpResponse) -> None:
        """Send the session under SESSION_COOKIE_NAME, and drop the cookie of its previous name."""
        if session.session_key is None or session.is_empty():
            return  # nothing to move: it ended, or never existed
        try:
            session.renew()  # saved: Django's middleware sends the cookie under its new name
        except (DatabaseError, SessionBusy):
            logger.warning("could not move a session to the new cookie name", exc_info=True)
            return
        response.delete_cookie(
            app_settings.PREVIOUS_COOKIE_NAME,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )

    @staticmethod
    def _touch_if_due(session: SessionStore) -> None:
        # Only sessions this request used: probes and static files never load one.
        if not (session.accessed and session.session_key) or session.is_empty():
            return
        try:
            session.record_activity()
        except (DatabaseError, SessionBusy):
            # The stamp can wait for the next request; the page must not fail for it.
            logger.warning("could not record session activity", exc_info=True)
