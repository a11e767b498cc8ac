"""Liveness and readiness in every state, against real servers."""

from __future__ import annotations

import pytest
import requests
from django.test import override_settings

from config.caches import build_caches
from harness.servers.backing import free_port
from harness.servers.shop import ShopServer, production_env


def test_healthz_answers_without_touching_database_or_session(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert "Cookie" not in response.get("Vary", "")
    assert not response.cookies


def test_probes_answer_whatever_the_host_header(client):
    assert client.get("/healthz", HTTP_HOST="10.8.0.12:8080").status_code == 200
    assert client.get("/", HTTP_HOST="10.8.0.12:8080").status_code == 400


@pytest.mark.django_db
def test_readyz_all_ok(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "cache": "ok", "breaker": "closed"}


@pytest.mark.django_db
def test_readyz_redis_down_is_degraded_but_ready(client):
    with override_settings(CACHES=build_caches(f"redis://127.0.0.1:{free_port()}/0")):
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["database"] == "ok" and response.json()["cache"] == "degraded"


@pytest.mark.django_db(transaction=True)
def test_readyz_live_server_ready_then_redis_stopped(test_database_url, redis_server, collected_static):
    server = ShopServer(production_env(DATABASE_URL=test_database_url, REDIS_URL=redis_server.url)).start()
    try:
        ready = requests.get(f"{server.url}/readyz", timeout=5)
        redis_server.stop()
        degraded = requests.get(f"{server.url}/readyz", timeout=5)
    finally:
        server.stop()

    assert (ready.status_code, ready.json()) == (200, {"database": "ok", "cache": "ok", "breaker": "closed"})
    assert degraded.status_code == 200
    assert (degraded.json()["database"], degraded.json()["cache"]) == ("ok", "degraded")


def test_readyz_is_503_until_the_database_has_answered_once(redis_server, collected_static):
    down = f"postgres://postgres@127.0.0.1:{free_port()}/shop"
    server = ShopServer(production_env(DATABASE_URL=down, REDIS_URL=redis_server.url)).start()
    try:
        response = requests.get(f"{server.url}/readyz", timeout=10)
        alive = requests.get(f"{server.url}/healthz", timeout=5)
    finally:
        server.stop()

    assert response.status_code == 503
    assert response.json() == {"database": "error", "cache": "ok", "breaker": "closed"}
    assert alive.status_code == 200
