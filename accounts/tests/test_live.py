"""Accounts and session administration against gunicorn, PostgreSQL and Redis."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from django.core.cache import caches

from accounts.models import User
from durable_sessions.sealing import storage_key
from durable_sessions.stamps import is_ended
from harness.load.shopper import Shopper
from harness.servers.shop import BASE_DIR, ShopServer, production_env
from harness.testing import PASSWORD, session_cached, session_row

NEW_PASSWORD = "another-Long-phrase-7"


@pytest.fixture
def shoppers(live_shop):
    return lambda: Shopper(live_shop.url)


def signed_up(make, username: str = "ada") -> Shopper:
    shopper = make()
    assert shopper.sign_up(username, PASSWORD).status_code == 302
    return shopper


def test_sign_in_keeps_the_basket_and_rotates_the_key(shoppers, make_product):
    kite = make_product(name="Kite")
    signed_up(shoppers).sign_out()
    shopper = shoppers()
    shopper.add(kite.pk, 2)
    anonymous_key = shopper.session_key

    assert shopper.sign_in("ada", PASSWORD).status_code == 302

    assert shopper.session_key != anonymous_key
    assert session_row(anonymous_key) is None
    assert is_ended(session_cached(anonymous_key))  # a tombstone, not the session
    assert shopper.me() == {"authenticated": True, "username": "ada"}
    assert shopper.basket() == {str(kite.pk): 2}


def test_password_change_ends_other_sessions(shoppers):
    laptop = signed_up(shoppers)
    phone = shoppers()
    phone.sign_in("ada", PASSWORD)

    response = laptop.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert phone.me()["authenticated"] is False
    assert laptop.me()["authenticated"] is True


def test_admin_revoke_and_sign_out_all_make_the_next_request_anonymous(shoppers):
    admin = signed_up(shoppers, "root")
    User.objects.filter(username="root").update(is_staff=True, is_superuser=True)
    phone = signed_up(shoppers, "ada")
    laptop, tablet = shoppers(), shoppers()
    laptop.sign_in("ada", PASSWORD)
    tablet.sign_in("ada", PASSWORD)

    changelist = "/admin/durable_sessions/usersession/"
    admin.post(changelist, {"action": "revoke_sessions", "_selected_action": storage_key(phone.session_key)})
    assert phone.me()["authenticated"] is False
    assert laptop.me()["authenticated"] is True

    admin.post(changelist, {"action": "sign_out_users", "_selected_action": storage_key(laptop.session_key)})
    assert laptop.me()["authenticated"] is False and tablet.me()["authenticated"] is False
    assert admin.me()["authenticated"] is True


def test_sessions_page_ends_another_session(shoppers):
    laptop = signed_up(shoppers)
    phone = shoppers()
    phone.sign_in("ada", PASSWORD)

    page = laptop.get("/accounts/sessions/").text
    ids = re.findall(r"/accounts/sessions/([0-9a-f]+)/end/", page)
    assert len(ids) == 1  # the other session; this one is marked, not offered
    laptop.post(f"/accounts/sessions/{ids[0]}/end/")

    assert phone.me()["authenticated"] is False
    assert laptop.me()["authenticated"] is True


def test_failed_sign_ins_are_throttled(shoppers, settings):
    signed_up(shoppers).sign_out()
    attacker = shoppers()
    for _ in range(settings.LOGIN_FAILURES_PER_USERNAME):
        attacker.sign_in("ada", "wrong")

    response = attacker.sign_in("ada", PASSWORD)

    assert response.status_code == 200 and "Too many failed sign-ins" in response.text
    assert attacker.me()["authenticated"] is False
    caches["default"].delete_pattern("*login-failures:*")


@pytest.mark.django_db(transaction=True)
def test_rewarm_after_flushall_restores_every_live_session(test_database_url, collected_static, redis_server):
    env = production_env(DATABASE_URL=test_database_url, REDIS_URL=redis_server.url)
    server = ShopServer(env).start()
    try:
        shoppers = [Shopper(server.url) for _ in range(5)]
        for i, shopper in enumerate(shoppers):
            shopper.sign_up(f"user{i}", PASSWORD)
        redis_server.cli("FLUSHALL")

        result = subprocess.run(
            [sys.executable, "manage.py", "sessions", "rewarm", "--batch-size", "2"],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert result.returncode == 0, result.stderr
        assert "Re-warmed 5 session(s)" in result.stdout
        assert redis_server.cli("-n", "1", "DBSIZE") == "5"
        assert all(shopper.me()["authenticated"] for shopper in shoppers)
    finally:
        server.stop()
