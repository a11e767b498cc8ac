"""Profile warm cart pages in process with pyinstrument (``make profile``, after ``make bench``).

Runs against the benchmark's database (shop_bench) and the machine's Redis,
with production settings, and prints where the time of a request goes.
"""

from __future__ import annotations

import os
import sys

PAGES = 400


def main() -> int:
    from harness.services import postgres_base_url

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

    client = Client()
    products = list(Product.objects.filter(is_active=True, stock__gt=0)[:5])
    if len(products) < 5:
        print("Run make bench first: it loads the catalogue this profile uses.", file=sys.stderr)
        return 1
    for _ in range(2):
        client.get(products[0].get_absolute_url())  # the CSRF cookie, then a session
    for product in products:
        client.post(f"/cart/add/{product.pk}/")
    for _ in range(50):
        client.get("/cart/")  # warm: session and products in Redis
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(PAGES):
        client.get("/cart/")
    profiler.stop()
    print(f"{PAGES} warm cart pages:")
    print(profiler.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
