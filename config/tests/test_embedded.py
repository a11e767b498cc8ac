"""The shop works on the embedded default: SQLite and the in-process cache, no services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.servers.backing import free_port, wait_listening
from harness.servers.shop import BASE_DIR

CONCURRENT_ADDS = 20


def local_env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    # The same engine and options as data/db.sqlite3, in a file of the test's own.
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": f"sqlite:///{database}"}


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def embedded_shop(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    env = local_env(str(tmp_path / "db.sqlite3"))
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "seed_shop", "--if-empty")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}", env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_shopping_on_the_embedded_default(embedded_shop):
    url, env = embedded_shop
    code = "from shop.models import Product; p = Product.objects.filter(stock__gte=40).first(); print(p.pk, p.slug)"
    pk, slug = manage(env, "shell", "--no-imports", "-c", code).split()
    shopper = requests.Session()
    assert "All products" in shopper.get(url + "/", timeout=10).text
    for _ in range(2):  # the CSRF cookie, then the session (recently viewed)
        shopper.get(f"{url}/products/{slug}/", timeout=10)
    form = {"quantity": "1", "csrfmiddlewaretoken": shopper.cookies["csrftoken"]}
    cookies = dict(shopper.cookies)

    def add(_: int) -> int:
        return requests.post(
            f"{url}/cart/add/{pk}/", data=form, cookies=cookies, allow_redirects=False, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=CONCURRENT_ADDS) as pool:
        codes = list(pool.map(add, range(CONCURRENT_ADDS)))
    # Added, or refused at once with nothing changed (a few wait for the lock at a time); never lost.
    assert set(codes) <= {302, 429} and 302 in codes
    assert shopper.get(f"{url}/cart/summary.json", timeout=10).json()["lines"] == {pk: codes.count(302)}

    checkout = shopper.get(f"{url}/checkout/", timeout=10).text
    token = re.search(r'name="token" value="([0-9a-f-]+)"', checkout).group(1)
    placed = shopper.post(
        f"{url}/checkout/",
        data={
            "name": "Ada",
            "email": "ada@example.com",
            "address": "1 Lane",
            "token": token,
            "csrfmiddlewaretoken": shopper.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert placed.status_code == 302 and re.fullmatch(r"/orders/\d+/", placed.headers["Location"])
    assert "Order #" in shopper.get(url + placed.headers["Location"], timeout=10).text
    assert shopper.get(f"{url}/cart/summary.json", timeout=10).json()["items"] == 0
