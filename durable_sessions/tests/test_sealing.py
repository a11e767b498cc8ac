"""Nothing stored works as a cookie, Redis holds sealed JSON, and made-up cookies leave nothing behind."""

from __future__ import annotations

import json
import logging
import time
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from config.caches import build_caches
from durable_sessions.backends.cached_db import SessionStore
from durable_sessions.cache.backend import session_cache
from durable_sessions.conf import app_settings
from durable_sessions.models import UserSession
from durable_sessions.sealing import seal, storage_key
from durable_sessions.stamps import LAST_ACTIVITY
from harness.servers.backing import free_port
from harness.testing import (
    PASSWORD,
    basket_lines,
    session_backdate,
    session_cache_key,
    session_cached,
    session_row,
    sign_in,
)

pytestmark = pytest.mark.django_db


def me(client) -> dict:
    return client.get("/accounts/me.json").json()


@pytest.fixture
def private_caches(redis_server):
    """The shop on a Redis of this test's own, so every key in it is the shop's."""
    with override_settings(CACHES=build_caches(redis_server.url)):
        yield redis.Redis(port=redis_server.port, socket_timeout=2)


def everything_in_redis(server: redis.Redis) -> list[tuple[bytes, bytes]]:
    """Every key and string value in every database of ``server``."""
    found = []
    for db in range(16):
        conn = redis.Redis(port=server.connection_pool.connection_kwargs["port"], db=db, socket_timeout=2)
        found += [(key, conn.get(key)) for key in conn.scan_iter() if conn.type(key) == b"string"]
    return found


def everything_in_postgres() -> str:
    """Every row of every table of the shop's database, as text."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows += [repr(row) for row in cursor.fetchall()]
    return "\n".join(rows)


# --- Keys at rest -----------------------------------------------------------------------------
def test_no_cookie_is_stored_shown_or_logged(ada, make_product, django_user_model, private_caches, caplog):
    kite = make_product(name="Kite")
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    shopper, staff = Client(), Client()
    with caplog.at_level(logging.DEBUG):
        sign_in(shopper)
        shopper.post(f"/cart/add/{kite.pk}/")
        sign_in(staff, username="root")
        changelist = staff.get("/admin/durable_sessions/usersession/").content.decode()
        detail = staff.get(
            f"/admin/durable_sessions/usersession/{storage_key(shopper.cookies['sessionid'].value)}/change/"
        )
        out = StringIO()
        call_command("sessions", "revoke", "--all-anonymous", "--dry-run", stdout=out)
        call_command("sessions", "stats", stdout=out)
    cookies = [shopper.cookies["sessionid"].value, staff.cookies["sessionid"].value]

    assert detail.status_code == 200
    stored = everything_in_postgres()
    in_redis = b"\n".join(key + b" " + (value or b"") for key, value in everything_in_redis(private_caches))
    for cookie in cookies:
        assert cookie not in stored
        assert cookie.encode() not in in_redis
        assert cookie not in changelist and cookie not in detail.content.decode()
        assert cookie not in caplog.text and cookie not in out.getvalue()
    assert session_row(cookies[0]).user == ada  # found by the keyed hash of the cookie


def test_journal_and_its_log_lines_hold_no_cookie(ada, caplog):
    unreachable = build_caches(f"redis://127.0.0.1:{free_port()}/0")
    client = Client()
    with override_settings(CACHES=unreachable), caplog.at_level(logging.DEBUG):
        sign_in(client)
        cookie = client.cookies["sessionid"].value
        assert me(client)["authenticated"] is True  # from PostgreSQL
    assert cookie not in everything_in_postgres() and cookie not in caplog.text


# --- Redis: JSON only, sealed -------------------------------------------------------------------
def test_every_value_in_redis_is_json(client, ada, make_product, private_caches):
    kite = make_product()
    client.post("/accounts/login/", {"username": "ada", "password": "wrong"})  # a throttle counter
    sign_in(client)
    client.post(f"/cart/add/{kite.pk}/")
    client.get("/cart/")  # the product cache
    client.post("/accounts/logout/")  # a tombstone

    values = dict(everything_in_redis(private_caches))
    kinds = {key.split(b":")[2][:33] for key in values}  # product, login-failures, the session prefix
    assert {b"product", b"login-failures", b"django.contrib.sessions.cached_db"} <= kinds, kinds
    for value in values.values():
        json.loads(value)  # raises for pickle


def test_a_session_entry_changed_in_redis_is_ignored_logged_and_read_from_postgres(
    client, ada, django_user_model, caplog
):
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    sign_in(client)
    cookie = client.cookies["sessionid"].value
    forged = {**session_cached(cookie), "_auth_user_id": str(root.pk)}
    key = session_cache_key(cookie)
    attempts = [
        json.dumps(forged),  # no MAC at all
        seal(key, forged).replace(seal(key, forged)[:8], "00000000", 1),  # a MAC made up
        seal(session_cache_key("x" * 32), forged),  # a real MAC, of another key
    ]
    for attempt in attempts:
        session_cache().set(key, attempt, 3600)
        with caplog.at_level(logging.WARNING, logger="durable_sessions.sealing"):
            assert me(client) == {"authenticated": True, "username": "ada"}
        assert "failed its MAC" in caplog.text
        caplog.clear()
    assert session_cached(cookie)["_auth_user_id"] == str(ada.pk)  # the durable copy is back


def test_rotating_secret_key_through_fallbacks_logs_nobody_out(client, ada, make_product, settings):
    kite = make_product()
    sign_in(client)
    client.post(f"/cart/add/{kite.pk}/")
    old = settings.SECRET_KEY

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret-key-" + "x" * 40, [old]

    assert me(client) == {"authenticated": True, "username": "ada"}
    assert basket_lines(client) == {str(kite.pk): 1}
    cookie = client.cookies["sessionid"].value
    assert session_row(cookie) is not None  # moved under the new key's hash
    assert not UserSession.objects.filter(session_key=storage_key(cookie, secret=old)).exists()


# --- Made-up cookies ----------------------------------------------------------------------------
@pytest.mark.parametrize("made_up", ["a" * 32, "not-a-session-key", "x" * 200])
def test_a_made_up_cookie_leaves_nothing_behind(client, make_product, made_up, private_caches):
    kite = make_product()
    client.cookies["sessionid"] = made_up

    response = client.post(f"/cart/add/{kite.pk}/")

    assert response.status_code == 302
    issued = client.cookies["sessionid"].value
    assert issued != made_up and basket_lines(client) == {str(kite.pk): 1}  # a fresh session
    everything = b"\n".join(key + b" " + (value or b"") for key, value in everything_in_redis(private_caches))
    assert made_up.encode() not in everything and storage_key(made_up).encode() not in everything
    assert made_up not in everything_in_postgres() and session_row(made_up) is None
    assert UserSession.objects.count() == 1


@pytest.mark.parametrize("odd", ['"\\000"', '"\\377\\000x"', "%00", "\x7f", "é", '"' * 3])
def test_a_cookie_of_odd_bytes_answers_as_no_cookie(client, odd):
    # Sent as a browser would send it: Django unquotes "\000" into a NUL byte.
    header = {"HTTP_COOKIE": f"sessionid={odd}"}

    assert client.get("/", **header).status_code == 200
    assert client.get("/accounts/me.json", **header).json() == {"authenticated": False, "username": None}
    assert client.get("/cart/", **header).status_code == 200
    assert UserSession.objects.count() == 0


def test_an_ended_session_seen_under_the_lock_leaves_a_tombstone(client, make_product):
    kite = make_product()
    client.post(f"/cart/add/{kite.pk}/")
    cookie = client.cookies["sessionid"].value
    store = SessionStore(cookie)
    store.load()
    UserSession.objects.all().delete()  # ended meanwhile, without its tombstone yet

    with store.locked():
        store["cart"] = {}

    assert session_cached(cookie) == {"_ended": True}


# --- Staff sessions -----------------------------------------------------------------------------
def test_staff_sessions_have_the_shorter_timeouts(ada, django_user_model):
    django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    shopper, clerk = Client(), Client()
    sign_in(shopper)
    sign_in(clerk, username="clerk")
    assert int(clerk.cookies["sessionid"]["max-age"]) == app_settings.STAFF_IDLE_TIMEOUT
    three_hours_ago = int(time.time()) - 3 * 3600
    for device in (shopper, clerk):
        session_backdate(device.cookies["sessionid"].value, **{LAST_ACTIVITY: three_hours_ago})

    assert me(shopper)["authenticated"] is True
    assert me(clerk)["authenticated"] is False


def test_a_cookie_not_in_the_key_format_is_never_looked_up(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/accounts/me.json", HTTP_COOKIE="sessionid=not-a-session-key")

    assert response.json() == {"authenticated": False, "username": None}


# --- A renamed cookie ---------------------------------------------------------------------------
def test_a_session_under_the_previous_cookie_name_moves_to_the_new_one(ada, settings):
    shopper = Client()
    sign_in(shopper)
    cookie = shopper.cookies["sessionid"].value
    settings.SESSION_COOKIE_NAME, settings.DURABLE_SESSIONS_PREVIOUS_COOKIE_NAME = "__Host-sessionid", "sessionid"

    response = shopper.get("/accounts/me.json")

    assert response.json() == {"authenticated": True, "username": "ada"}
    assert response.cookies["__Host-sessionid"].value == cookie
    assert response.cookies["sessionid"]["max-age"] == 0  # the old cookie is dropped
    assert me(shopper) == {"authenticated": True, "username": "ada"}  # now from the new cookie alone
    assert "sessionid" not in shopper.cookies or not shopper.cookies["sessionid"].value


def test_storage_keys_are_what_the_rekeying_migration_computes(settings):
    import importlib

    rekey = importlib.import_module("durable_sessions.migrations.0002_hash_session_keys")
    for secret in (settings.SECRET_KEY, "another-secret"):
        settings.SECRET_KEY = secret
        assert storage_key("abcdefghijklmnopqrstuvwxyz012345") == rekey.storage_key("abcdefghijklmnopqrstuvwxyz012345")


def test_a_change_first_after_a_rotation_finds_the_row_under_the_old_key(client, ada, make_product, settings):
    kite = make_product()
    sign_in(client)
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret-key-" + "y" * 40, [old]

    assert client.post(f"/cart/add/{kite.pk}/").status_code == 302  # locked before anything reads the session

    cookie = client.cookies["sessionid"].value
    assert not UserSession.objects.filter(session_key=storage_key(cookie, secret=old)).exists()
    assert session_row(cookie).get_decoded()["cart"] == {str(kite.pk): {"quantity": 1, "price": "9.99"}}
    assert me(client) == {"authenticated": True, "username": "ada"}
