"""Upgrading from the release whose sessions lived in accounts logs nobody out."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.contrib.sessions.serializers import JSONSerializer
from django.core import signing
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string

from durable_sessions.cache.backend import session_cache
from durable_sessions.models import SessionCacheJournal, UserSession
from durable_sessions.stamps import STAMPS_KEY
from harness.testing import PASSWORD, basket_lines, session_cache_key, session_row

pytestmark = pytest.mark.django_db(transaction=True)
# The last migration of the release before durable_sessions, and what its
# sessions looked like: stamps as top-level keys, signed as every release signs.
PREVIOUS_RELEASE = [("accounts", "0003_session_cache_journal"), ("durable_sessions", None)]
OLD_SALT = "django.contrib.sessions.SessionStore"


def migrate(targets=None) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def old_session(old_apps, user, cart: dict) -> str:
    """Store a signed-in session with a basket as the previous release did: its row and its Redis copy."""
    now = int(time.time())
    data = {
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: "accounts.throttle.ThrottledModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
        "cart": cart,
        "_created_at": now - 60,
        "_last_activity": now - 60,
        "_authenticated_at": now - 60,
        "_ip": "203.0.113.5",
        "_user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
    }
    key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    old_apps.get_model("accounts", "UserSession").objects.create(
        session_key=key,
        session_data=signing.dumps(data, salt=OLD_SALT, serializer=JSONSerializer, compress=True),
        expire_date=timezone.now() + timedelta(days=14),
        user_id=user.pk,
        ip_address="203.0.113.5",
    )
    session_cache().set(KEY_PREFIX + key, data, 3600)  # unsealed, under the cookie itself
    return key


def test_sessions_of_the_previous_release_survive_the_upgrade(ada, make_product, django_user_model):
    kite = make_product(name="Kite")
    clerk = django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    migrate(PREVIOUS_RELEASE)
    old_apps = MigrationExecutor(connection).loader.project_state(PREVIOUS_RELEASE[:1]).apps
    # Staff allowed to view sessions before the upgrade...
    clerk.user_permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="view_usersession"))
    cart = {str(kite.pk): {"quantity": 2, "price": "9.99"}}
    cached, durable_only = old_session(old_apps, ada, cart), old_session(old_apps, ada, cart)
    session_cache().delete(KEY_PREFIX + durable_only)  # Redis lost this copy: PostgreSQL alone has it
    old_apps.get_model("accounts", "SessionCacheJournal").objects.create(
        cache_key=KEY_PREFIX + cached, failed_at=timezone.now()
    )

    migrate()

    # Nothing stored holds a cookie any more: rows, the journal and Redis know the sessions by their storage keys.
    for key in (cached, durable_only):
        assert not UserSession.objects.filter(session_key=key).exists()
        assert session_cache().get(KEY_PREFIX + key) is None
    assert list(SessionCacheJournal.objects.values_list("cache_key", flat=True)) == [session_cache_key(cached)]
    SessionCacheJournal.objects.all().delete()
    for key in (cached, durable_only):
        shopper = Client()
        shopper.cookies["sessionid"] = key
        assert shopper.get("/accounts/me.json").json() == {"authenticated": True, "username": "ada"}
        assert basket_lines(shopper) == {str(kite.pk): 2}
        # The next change stores the stamps the new way; the apps' data stays as it was.
        shopper.post(f"/cart/add/{kite.pk}/")
        row = session_row(key)
        assert row.get_decoded()["cart"][str(kite.pk)]["quantity"] == 3
        assert set(row.stored[STAMPS_KEY]) >= {"created_at", "last_activity", "authenticated_at", "ip"}
        assert "_last_activity" not in row.stored
    # ...still can, and only view.
    staff = Client()
    staff.force_login(clerk)
    assert staff.get("/admin/durable_sessions/usersession/").status_code == 200
    assert clerk.user_permissions.get().content_type.app_label == "durable_sessions"
