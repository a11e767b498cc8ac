"""Sessions live in Redis first and PostgreSQL always, on the real servers."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from django_redis import get_redis_connection

from config.caches import SESSION_CACHE_ALIAS, build_caches
from harness.servers.backing import free_port
from harness.testing import session_cache_key, session_row

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True, is_superuser=True)


def sign_in(client) -> str:
    """Sign in through the admin's login form (a real session write) and return the key."""
    response = client.post("/admin/login/?next=/admin/", {"username": "staff", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def redis_key(session_key: str) -> str:
    return caches[SESSION_CACHE_ALIAS].make_key(session_cache_key(session_key))


def is_signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_session_write_lands_in_redis_and_postgres(client, staff):
    key = sign_in(client)

    assert session_row(key) is not None
    raw = get_redis_connection(SESSION_CACHE_ALIAS).get(redis_key(key))
    mac, _, payload = json.loads(raw).partition(":")  # JSON, never pickle: a MAC and the session's JSON
    assert json.loads(payload)["_auth_user_id"] == str(staff.pk) and len(mac) == 64


@pytest.mark.django_db
def test_session_cache_uses_its_own_redis_database():
    general = get_redis_connection("default").connection_pool.connection_kwargs["db"]
    sessions = get_redis_connection(SESSION_CACHE_ALIAS).connection_pool.connection_kwargs["db"]

    assert general != sessions


def test_redis_replies_are_parsed_by_hiredis():
    from redis.connection import _HiredisParser

    pool = get_redis_connection(SESSION_CACHE_ALIAS).connection_pool

    assert pool.connection_kwargs["parser_class"] is _HiredisParser


@pytest.mark.django_db
def test_session_reloads_from_postgres_after_flushall(client, staff, redis_server):
    with override_settings(CACHES=build_caches(redis_server.url)):
        key = sign_in(client)
        assert redis_server.cli("-n", "1", "EXISTS", redis_key(key)) == "1"

        redis_server.cli("FLUSHALL")
        assert redis_server.cli("-n", "1", "DBSIZE") == "0"

        assert is_signed_in(client)
        assert redis_server.cli("-n", "1", "EXISTS", redis_key(key)) == "1"


@pytest.mark.django_db
def test_clearing_the_general_cache_keeps_sessions(client, staff, redis_server):
    with override_settings(CACHES=build_caches(redis_server.url)):
        key = sign_in(client)

        caches["default"].clear()

        assert redis_server.cli("-n", "1", "EXISTS", redis_key(key)) == "1"
        assert is_signed_in(client)


@pytest.mark.django_db
def test_unreachable_session_cache_falls_back_to_postgres(client, staff, caplog):
    unreachable = build_caches(f"redis://127.0.0.1:{free_port()}/0")
    with override_settings(CACHES=unreachable), caplog.at_level(logging.WARNING, logger="durable_sessions.cache"):
        key = sign_in(client)
        assert session_row(key) is not None
        assert is_signed_in(client)

        client.post("/admin/logout/")

        assert session_row(key) is None
        assert not is_signed_in(client)
    assert "falling back to PostgreSQL" in caplog.text  # caught, and logged


@pytest.mark.django_db
def test_stock_cached_db_fails_requests_when_errors_are_not_ignored(client, staff):
    unreachable = build_caches(f"redis://127.0.0.1:{free_port()}/0")
    unreachable[SESSION_CACHE_ALIAS]["BACKEND"] = "django_redis.cache.RedisCache"  # stock, errors not ignored
    stock = override_settings(CACHES=unreachable, SESSION_ENGINE="django.contrib.sessions.backends.cached_db")
    with stock, pytest.raises(redis.exceptions.ConnectionError):
        sign_in(client)
