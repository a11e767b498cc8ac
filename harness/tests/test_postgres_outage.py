"""PostgreSQL stopped for 10 s under traffic: shoppers stay signed in, warm pages serve, changes answer 503.

A private PostgreSQL server (it is stopped) and a private Redis, two containers
of the shop's image behind nginx round robin, six scripted shoppers. The
outcome's row joins the resilience table (artifacts/postgres-outage.md).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from harness.load.scenario import HEADER, Outcome, ScriptedShopper, hold, run_traffic_for, traffic, verify
from harness.servers.backing import private_postgres, private_redis
from harness.servers.cluster import Cluster, cluster_env, prepare_database, products_for_load
from harness.servers.image import BASE_DIR
from harness.testing import wait_until

pytestmark = pytest.mark.resilience

SHOPPERS = 6
OUTAGE = 10.0
# A change that cannot be made must be answered this fast (connect_timeout is 2 s).
ANSWER_WITHIN = 2.0
REPORT = BASE_DIR / "artifacts" / "postgres-outage.md"
PAGES_THAT_MAY_NEED_SQL = ("/checkout/", "/accounts/", "/accounts/sessions/", "/")


@dataclass
class During:
    """What the shoppers saw while PostgreSQL was stopped."""

    counts: Counter = field(default_factory=Counter)
    slowest_refusal: float = 0.0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, *, failed: bool = False, detail: str = "") -> None:
        with self.lock:
            self.counts[what] += 1
            if failed and len(self.failures) < 10:
                self.failures.append(f"{what}: {detail}")


def shop_through_the_outage(shopper: ScriptedShopper, stop: threading.Event, during: During) -> None:
    """Look at the basket, ask who is signed in, try to add a product: again and again."""
    product_id = shopper.products[0][0]
    while not stop.is_set():
        basket = shopper.client.get("/cart/")
        ok = basket.status_code == 200 and "Your basket" in basket.text
        during.count(
            "basket page served" if ok else "basket page failed", failed=not ok, detail=str(basket.status_code)
        )
        for path in PAGES_THAT_MAY_NEED_SQL:  # served if they need none, else a clear 503: never a 500
            page = shopper.client.get(path)
            if page.status_code == 200 or (page.status_code == 503 and page.headers.get("Retry-After")):
                during.count(f"other page {page.status_code}")
            else:
                during.count("other page failed", failed=True, detail=f"{path} {page.status_code}")
        me = shopper.client.get("/accounts/me.json")
        signed_in = me.status_code == 200 and me.json()["authenticated"]
        during.count("signed in" if signed_in else "signed out", failed=not signed_in, detail=me.text[:80])
        started = time.monotonic()
        try:
            change = shopper.client.add(product_id)
            status, retry_after = change.status_code, change.headers.get("Retry-After")
        except requests.RequestException as error:
            status, retry_after = 0, None
            during.count("change unanswered", failed=True, detail=str(error))
        seconds = time.monotonic() - started
        with during.lock:
            during.slowest_refusal = max(during.slowest_refusal, seconds)
        if status == 503 and retry_after and seconds < ANSWER_WITHIN:
            during.count("change refused with 503")
        elif status == 302:
            during.count("change made")  # only before PostgreSQL stopped or after it came back
            shopper.basket[str(product_id)] = shopper.basket.get(str(product_id), 0) + 1
        elif status:
            during.count("change failed", failed=True, detail=f"{status} in {seconds:.2f} s")


def test_postgres_stopped_for_ten_seconds(shop_image):
    outcome = Outcome("8. PostgreSQL stopped 10 s, started")
    with private_postgres() as postgres, private_redis() as redis:
        database_url = postgres.url.rsplit("/", 1)[0] + "/shop"
        env = cluster_env(database_url, redis.url)
        prepare_database(env, fresh=True, image=shop_image)
        products = products_for_load(database_url, 40)
        cluster = Cluster(env, image=shop_image).start(2)
        try:
            shoppers = [ScriptedShopper(cluster.url, f"shopper{n}", products, seed=n) for n in range(SHOPPERS)]
            for shopper in shoppers:
                shopper.sign_up()
                assert shopper.client.add(products[0][0]).status_code == 302
                shopper.basket = {str(products[0][0]): 1}
            with traffic(shoppers, outcome):
                run_traffic_for(2)  # baskets fill; sessions and products are in Redis
            for shopper in shoppers:
                for instance in cluster.in_rotation:  # every instance has shown this basket once: warm
                    assert requests.get(f"{instance.url}/cart/", cookies=shopper.client.http.cookies).ok

            during, stop = During(), threading.Event()
            threads = [threading.Thread(target=shop_through_the_outage, args=(s, stop, during)) for s in shoppers]
            postgres.stop()
            stopped_at = time.monotonic()
            for thread in threads:
                thread.start()
            try:
                hold(OUTAGE / 2)
                readiness = [requests.get(f"{i.url}/readyz", timeout=5) for i in cluster.in_rotation]
                hold(OUTAGE / 2)  # the rest of the outage
            finally:
                postgres.start()
                restarted_at = time.monotonic()
            # Recovery without a restart: a change goes through again on every instance.
            probe = shoppers[0]
            wait_until(lambda: probe.client.add(products[1][0]).status_code == 302, timeout=30, interval=0.2)
            recovered_in = time.monotonic() - restarted_at
            probe.basket[str(products[1][0])] = probe.basket.get(str(products[1][0]), 0) + 1
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            with traffic(shoppers, outcome):
                run_traffic_for(3)  # shopping goes on
            verify(shoppers, cluster.in_rotation, outcome)
        finally:
            cluster.stop()

    counts = during.counts
    note = (
        f"8: while PostgreSQL was stopped ({restarted_at - stopped_at:.0f} s): {counts['basket page served']} warm "
        f"basket pages served, {counts['basket page failed']} failed; {counts['signed in']} answers said signed in, "
        f"{counts['signed out']} signed out; other pages: {counts['other page 200']} served, "
        f"{counts['other page 503']} answered 503 with Retry-After, {counts['other page failed']} failed; "
        f"{counts['change refused with 503']} changes refused with 503 and "
        f"Retry-After (slowest answer {during.slowest_refusal:.2f} s), {counts['change failed']} failed otherwise; "
        f"/readyz {[r.status_code for r in readiness]}; changes went through again {recovered_in:.1f} s after it "
        "was started, without a restart."
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join([HEADER, outcome.row(), "", note]) + "\n")
    assert during.failures == [], during.failures
    assert counts["basket page served"] > 0 and counts["change refused with 503"] > 0
    assert during.slowest_refusal < ANSWER_WITHIN
    assert all(r.status_code == 200 and r.json()["database"] == "error" for r in readiness)
    assert outcome.problems == 0, (outcome.row(), outcome.failures)
