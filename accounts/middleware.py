"""Load the signed-in user, and keep them signed in while PostgreSQL cannot be reached."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY, get_user
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

# Who signed in to this session, as far as a page needs to say so without PostgreSQL.
USER_SNAPSHOT_SESSION_KEY = "_auth_user_snapshot"


class SnapshotUser(AnonymousUser):
    """The signed-in user as the session remembers them: enough to show pages, never to change anything.

    Used only while PostgreSQL does not answer. It holds no permissions; a view
    that needs the real user queries the database, fails, and answers 503.
    """

    email = ""

    def __init__(self, user_id: int, username: str) -> None:
        self.id = self.pk = user_id
        self.username = username

    def __str__(self) -> str:
        return self.username

    def get_full_name(self) -> str:
        return ""

    def get_short_name(self) -> str:
        return self.username

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def is_authenticated(self) -> bool:
        return True


def user_snapshot_record(sender, request, user, **kwargs) -> None:
    """Receive user_logged_in: remember who signed in to this session (JSON-safe primitives only)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[USER_SNAPSHOT_SESSION_KEY] = {"id": user.pk, "username": user.get_username()}


def user_or_snapshot(request: HttpRequest):
    """Return the session's user from PostgreSQL; while it cannot be reached, the session's snapshot of them.

    Then ``request.database_unreachable`` is True: whatever fails later in the
    request answers 503 (shop.views.server_error), not 500.
    """
    try:
        return get_user(request)
    except (OperationalError, InterfaceError):
        snapshot = request.session.get(USER_SNAPSHOT_SESSION_KEY)
        if isinstance(snapshot, dict) and str(snapshot.get("id")) == str(request.session.get(SESSION_KEY)):
            request.database_unreachable = True
            return SnapshotUser(int(snapshot["id"]), str(snapshot.get("username", "")))
        raise


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's, whose user stays signed in (read-only) while PostgreSQL is down."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: user_or_snapshot(request))
