"""/metrics: who may read it, what it holds, and that it sums every gunicorn worker."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from harness.load.shopper import Shopper
from harness.servers.cluster import scrape
from harness.servers.shop import ShopServer, production_env

TOKEN = "a-scrape-token-for-tests"
NAMES = {
    "shop_session_cache_requests",
    "shop_session_db_reads",
    "shop_session_breaker_open",
    "shop_session_breaker_transitions",
    "shop_session_journal_pending",
    "shop_session_lock_wait_seconds",
    "shop_session_lock_busy",
    "shop_sessions_started",
    "shop_sessions_ended",
    "shop_signin_throttled",
    "shop_http_request_duration_seconds",
}


@pytest.mark.django_db
def test_metrics_are_not_there_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_metrics_refuse_a_missing_or_wrong_token(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_metrics_hold_every_metric_of_the_shop_in_prometheus_text_format(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    families = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert families >= NAMES


@pytest.mark.django_db
def test_requests_are_timed_by_view_name_not_by_url(client, make_product):
    kite, mug = make_product(), make_product()
    labels = {"view": "shop:product", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("shop_http_request_duration_seconds_count", labels) or 0

    client.get(kite.get_absolute_url())
    client.get(mug.get_absolute_url())

    assert REGISTRY.get_sample_value("shop_http_request_duration_seconds_count", labels) == before + 2


def test_a_scrape_sums_every_gunicorn_worker(test_database_url, collected_static, redis_server):
    env = production_env(DATABASE_URL=test_database_url, REDIS_URL=redis_server.url, METRICS_TOKEN=TOKEN)
    server = ShopServer(env, workers=3).start()
    try:
        shopper = Shopper(server.url)
        for _ in range(30):
            assert shopper.get("/accounts/me.json").status_code == 200
        samples = scrape(server.url, token=TOKEN)
    finally:
        server.stop()

    me = (("method", "GET"), ("status", "200"), ("view", "accounts:me"))
    assert samples[("shop_http_request_duration_seconds_count", me)] == 30  # whichever workers served them
    assert len([name for name, _ in samples if name == "shop_session_breaker_open"]) == 3  # each worker's own
