"""Time and profile the hot path in process (``make profile``, after ``make bench``).

Runs against the benchmark's database (shop_bench) and the machine's Redis,
with production settings. Prints the time per warm cart page (5-line basket)
and per locked add to basket, best of five rounds, then where the time of a
warm cart page and of an add goes (pyinstrument).
"""

from __future__ import annotations

import os
import sys
import time

ROUNDS = 5
PAGES = 300
ADDS = 200


def best_per_request(call, count: int, between=None) -> float:
    """Milliseconds per call, best of ROUNDS rounds of ``count`` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(count):
            call(i)
        best = min(best, (time.perf_counter() - started) / count * 1000)
        if between:
            between()
    return best


def main() -> int:
    from harness.servers.backing import postgres_base_url

    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="profile-only-" + "x" * 50,
        HTTPS="false",
        ALLOWED_HOSTS="testserver",
        DATABASE_URL=f"{postgres_base_url()}/shop_bench",
        REDIS_URL=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/12",
    )
    import django

    django.setup()
    from django.test import Client
    from pyinstrument import Profiler

    from shop.models import Product

    products = list(Product.objects.filter(is_active=True, stock__gt=0)[:100])
    if len(products) < 100:
        print("Run make bench first: it loads the catalogue this profile uses.", file=sys.stderr)
        return 1

    def shopper() -> Client:
        client = Client()
        for _ in range(2):
            client.get(products[0].get_absolute_url())  # the CSRF cookie, then a session
        return client

    reader = shopper()
    for product in products[:5]:
        reader.post(f"/cart/add/{product.pk}/")
    for _ in range(50):
        reader.get("/cart/")  # warm: session and products in Redis

    def page(_: int) -> None:
        reader.get("/cart/")

    adder = shopper()

    def add(i: int) -> None:
        adder.post(f"/cart/add/{products[i % len(products)].pk}/", {"quantity": "1"})
        adder.cookies.pop("messages", None)  # a browser shows them, then drops the cookie

    def empty_basket() -> None:
        adder.post("/cart/clear/")

    print(f"warm cart page: {best_per_request(page, PAGES):.2f} ms (best of {ROUNDS} rounds of {PAGES})")
    print(
        f"add to basket, locked: {best_per_request(add, ADDS, empty_basket):.2f} ms (best of {ROUNDS} rounds of {ADDS})"
    )
    for label, call, count in (("warm cart pages", page, PAGES), ("adds to basket", add, ADDS)):
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for i in range(count):
            call(i)
        profiler.stop()
        print(f"\n{count} {label}:")
        print(profiler.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
