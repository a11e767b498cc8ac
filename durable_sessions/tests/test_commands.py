"""manage.py sessions and clearsessions, on the real database and Redis."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from config.caches import build_caches
from durable_sessions.backends.cached_db import SessionStore
from durable_sessions.models import UserSession
from durable_sessions.sealing import storage_key
from durable_sessions.stamps import LAST_ACTIVITY
from harness.testing import PASSWORD, session_backdate, session_cached, session_row, sign_in

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("sessions", *args, stdout=out)
    return out.getvalue()


def anonymous_session() -> str:
    store = SessionStore()
    store["cart"] = {}
    store.save()
    return store.session_key


@pytest.fixture
def population(ada, django_user_model):
    django_user_model.objects.create_user("bob", password=PASSWORD)
    devices = {"ada": Client(), "bob": Client()}
    for name, device in devices.items():
        sign_in(device, username=name)
    anonymous = [anonymous_session() for _ in range(3)]
    return devices, anonymous


def test_stats_counts_sessions(population):
    out = run("stats")

    assert "live                 5" in out
    assert "signed in (live)     2" in out
    assert "anonymous (live)     3" in out
    assert "live in Redis        5" in out
    assert "max size (bytes)" in out


def test_revoke_user(population):
    devices, _ = population

    out = run("revoke", "--user", "ada")

    assert "Ended 1 of ada session(s)" in out
    assert devices["ada"].get("/accounts/me.json").json()["authenticated"] is False
    assert devices["bob"].get("/accounts/me.json").json()["authenticated"] is True


def test_revoke_all_anonymous_with_dry_run_first(population):
    _, anonymous = population

    dry = run("revoke", "--all-anonymous", "--dry-run")
    assert "Would end 3 anonymous session(s)" in dry
    assert UserSession.objects.count() == 5

    run("revoke", "--all-anonymous")
    assert UserSession.objects.filter(session_key__in=[storage_key(k) for k in anonymous]).count() == 0
    assert UserSession.objects.count() == 2


def test_revoke_inactive_for(population):
    _, anonymous = population
    session_backdate(anonymous[0], **{LAST_ACTIVITY: int(time.time()) - 3 * 3600})

    out = run("revoke", "--inactive-for", "2h")

    assert "Ended 1 inactive session(s)" in out
    assert session_row(anonymous[0]) is None


@pytest.mark.parametrize(
    "args",
    [
        ["revoke"],
        ["revoke", "--user", "nobody"],
        ["revoke", "--inactive-for", "soon"],
        ["revoke", "--inactive-for", "0m"],
        ["revoke", "--user", "ada", "--all-anonymous"],
        ["rewarm", "--batch-size", "0"],
        ["explode"],
    ],
)
def test_bad_arguments_are_refused(ada, args):
    with pytest.raises(CommandError):
        run(*args)


def test_bad_arguments_exit_non_zero_from_the_command_line():
    import subprocess
    import sys

    from harness.servers.shop import BASE_DIR

    result = subprocess.run(
        [sys.executable, "manage.py", "sessions", "revoke", "--inactive-for", "later"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )

    assert result.returncode != 0
    assert "not a duration" in result.stderr


def test_rewarm_after_flushall_restores_every_live_session(redis_server, ada):
    with override_settings(CACHES=build_caches(redis_server.url)):
        keys = [anonymous_session() for _ in range(7)]
        phone = Client()
        sign_in(phone)
        keys.append(phone.session.session_key)
        redis_server.cli("FLUSHALL")
        assert redis_server.cli("-n", "1", "DBSIZE") == "0"

        out = run("rewarm", "--batch-size", "3")

        assert "Re-warmed 8 session(s)" in out and "in 3 batch(es)" in out
        assert "8/8" in out
        assert int(redis_server.cli("-n", "1", "DBSIZE")) == 8

        assert all(session_cached(key) is not None for key in keys)
        assert phone.get("/accounts/me.json").json()["authenticated"] is True


def test_clearsessions_works_with_the_session_model(ada, settings):
    kept = anonymous_session()
    gone = anonymous_session()
    UserSession.objects.filter(session_key=storage_key(gone)).update(expire_date="2000-01-01T00:00:00Z")

    call_command("clearsessions")

    assert list(UserSession.objects.values_list("session_key", flat=True)) == [storage_key(kept)]
