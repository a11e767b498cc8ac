"""Logs: one JSON object a line in production, with severity, time, request id and access fields; text locally."""

from __future__ import annotations

import json

import pytest
import requests

from config.logs import build_logging
from harness.servers.shop import ShopServer, production_env
from harness.testing import access_lines, log_entries

TRACE = "105445aa7843bc8bf206b12000100000"


@pytest.fixture
def production_shop(test_database_url, collected_static, redis_server, tmp_path):
    """A shop under gunicorn with production settings and their default log format."""
    env = production_env(DATABASE_URL=test_database_url, REDIS_URL=redis_server.url)
    env.pop("LOG_FORMAT", None)
    server = ShopServer(env, workers=2, log_path=tmp_path / "shop.log").start()
    yield server
    server.stop()


def test_production_logs_are_json_with_severity_time_request_ids_and_access_fields(production_shop):
    url = production_shop.url
    given = requests.get(f"{url}/cart/", headers={"X-Request-ID": "req-42"}, timeout=10)
    traced = requests.get(f"{url}/cart/", headers={"X-Cloud-Trace-Context": f"{TRACE}/1;o=1"}, timeout=10)
    forged = requests.get(f"{url}/cart/", headers={"X-Request-ID": '" forged: {"severity": "CRITICAL"}'}, timeout=10)
    missing = requests.get(f"{url}/no-such-page/", timeout=10)
    production_shop.stop()  # its last lines are written

    entries = log_entries(production_shop.log_path)  # fails on any line that is not JSON
    assert entries and all({"severity", "message", "time"} <= entry.keys() for entry in entries)
    assert {"INFO", "WARNING"} <= {entry["severity"] for entry in entries}
    assert given.headers["X-Request-ID"] == "req-42" and traced.headers["X-Request-ID"] == TRACE
    made = forged.headers["X-Request-ID"]
    assert len(made) == 32 and "forged" not in made
    cart = access_lines(production_shop.log_path, "GET", "/cart/", 200)
    assert [line["request_id"] for line in cart] == ["req-42", TRACE, made]
    assert all(isinstance(line["duration_ms"], float) for line in cart)
    # A line logged while the request ran carries its id too (Django's "Not Found").
    not_found = [e for e in entries if e.get("request_id") == missing.headers["X-Request-ID"]]
    assert {e["logger"] for e in not_found} == {"django.request", "shop.access"}
    assert "Starting gunicorn" in " ".join(e["message"] for e in entries if e["logger"] == "gunicorn.error")


def test_text_logs_when_asked(test_database_url, collected_static, redis_server, tmp_path):
    env = production_env(DATABASE_URL=test_database_url, REDIS_URL=redis_server.url, LOG_FORMAT="text")
    server = ShopServer(env, workers=1, log_path=tmp_path / "shop.log").start()
    requests.get(f"{server.url}/cart/", timeout=10)
    server.stop()

    text = server.log_path.read_text()
    assert '"GET /cart/ HTTP/1.1" 200' in text
    with pytest.raises(json.JSONDecodeError):
        log_entries(server.log_path)


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        build_logging("xml", level="INFO", access_log=True)
