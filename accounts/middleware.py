"""Give sessions their client, and record activity at most once per interval."""

from __future__ import annotations

import ipaddress
import logging
import time

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date

from accounts.sessions import Client
from config.sessions import session_update

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
    """Django's session middleware, plus client metadata and the activity stamp."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.session.client = Client(
            ip_address=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", "")
        )

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and response.status_code < 500:
            self._touch_if_due(session)
        response = super().process_response(request, response)
        if (
            session is not None
            and getattr(session, "saved_under_lock", False)
            and session.session_key
            and settings.SESSION_COOKIE_NAME not in response.cookies
        ):
            self._renew_cookie(request, response)
        return response

    @staticmethod
    def _touch_if_due(session) -> None:
        # Only sessions this request used: probes and static files never load one.
        if not (session.accessed and session.session_key and hasattr(session, "needs_touch")):
            return
        if session.is_empty() or not session.needs_touch():
            return
        if session.modified:
            session.touch()  # saved with this request's own changes, just after
            return
        try:
            with session_update(session):
                session.touch()
        except DatabaseError:
            # The stamp can wait for the next request; the page must not fail for it.
            logger.warning("could not record session activity", exc_info=True)

    @staticmethod
    def _renew_cookie(request: HttpRequest, response: HttpResponse) -> None:
        """Send the cookie again with a fresh max-age: the expiry slides with activity."""
        session = request.session
        if session.get_expire_at_browser_close():
            max_age, expires = None, None
        else:
            max_age = session.get_expiry_age()
            expires = http_date(time.time() + max_age)
        response.set_cookie(
            settings.SESSION_COOKIE_NAME,
            session.session_key,
            max_age=max_age,
            expires=expires,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE or None,
            httponly=settings.SESSION_COOKIE_HTTPONLY or None,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
