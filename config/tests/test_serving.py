"""gunicorn serves the shop as the container does: static files, workers, SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest
import requests

from harness.servers.shop import BASE_DIR, ShopServer, production_env


@pytest.fixture
def server(test_database_url, collected_static, transactional_db):
    shop = ShopServer(production_env(DATABASE_URL=test_database_url), workers=3).start()
    yield shop
    shop.stop()


def test_static_files_have_hashed_names_and_are_compressed(server):
    page = requests.get(server.url, timeout=5)
    match = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', page.text)
    assert match, page.text

    css = requests.get(server.url + match.group(1), headers={"Accept-Encoding": "gzip"}, timeout=5)

    assert css.status_code == 200
    assert css.headers["Content-Encoding"] == "gzip"
    assert "immutable" in css.headers["Cache-Control"]


def test_gunicorn_binds_port_and_runs_web_concurrency_workers(server):
    children = subprocess.run(
        ["ps", "--ppid", str(server.process.pid), "-o", "pid="], capture_output=True, text=True
    ).stdout.split()

    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert len(children) == 3


def test_over_https_the_session_and_csrf_cookies_carry_the_host_prefix(
    test_database_url, collected_static, transactional_db, make_product
):
    from django.conf import settings

    product = make_product()
    https = {"X-Forwarded-Proto": "https"}  # as the load balancer that ends TLS says
    env = production_env(DATABASE_URL=test_database_url, REDIS_URL=settings.TEST_REDIS_URL, HTTPS="true")
    shop = ShopServer(env).start()
    sent = {}
    try:
        form = requests.get(shop.url + "/accounts/login/", headers=https, timeout=5)
        sent.update(set_cookies(form))
        token = sent["__Host-csrftoken"].split(";")[0].split("=", 1)[1]
        # A visitor who keeps cookies gets a session on a product page (recently viewed).
        page = requests.get(
            shop.url + product.get_absolute_url(), headers=https, cookies={"__Host-csrftoken": token}, timeout=5
        )
        sent.update(set_cookies(page))
    finally:
        shop.stop()

    assert set(sent) == {"__Host-csrftoken", "__Host-sessionid"}
    for cookie in sent.values():
        attributes = dict(part.strip().partition("=")[::2] for part in cookie.split(";")[1:])
        assert "Secure" in attributes and attributes["Path"] == "/" and "Domain" not in attributes


def set_cookies(response: requests.Response) -> dict[str, str]:
    """Return each Set-Cookie header of ``response`` by the cookie's name."""
    return {header.split("=", 1)[0]: header for header in response.raw.headers.getlist("Set-Cookie")}


def test_sigterm_exits_cleanly(server):
    assert server.stop(signal.SIGTERM) == 0


def test_serving_writes_nothing_outside_memory(test_database_url, collected_static, transactional_db, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    status = ["git", "status", "--porcelain", "--ignored"]
    before = subprocess.run(status, cwd=BASE_DIR, capture_output=True, text=True).stdout
    shop = ShopServer(production_env(DATABASE_URL=test_database_url, HOME=str(home), PYTHONDONTWRITEBYTECODE="1"))
    shop.start()
    try:
        for path in ("/", "/healthz", "/readyz", "/admin/login/"):
            assert requests.get(shop.url + path, timeout=5).status_code == 200
    finally:
        shop.stop()

    assert list(home.iterdir()) == []  # no control socket or other files under $HOME
    assert subprocess.run(status, cwd=BASE_DIR, capture_output=True, text=True).stdout == before


def test_dockerfile_builds_on_the_official_slim_python_image_unless_told_otherwise():
    # What the image does is tested on the image (harness/tests/test_container.py); this is what it is built from.
    text = (BASE_DIR / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)

    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert text.index("COPY requirements.txt") < text.index("COPY --chown=root:root . .")  # dependencies cached apart
    assert "manage.py migrate" not in text
