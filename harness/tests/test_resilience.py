"""Fault injection: scripted shoppers against a cluster of containers while they and Redis are broken.

Every instance is a container of the shop's image (harness/servers/container.py),
migrated and seeded by jobs of that image, as a platform runs it. Scenarios run
one after another on one cluster (module scope, in file order); the last one
rolls the cluster over to the next release of the image.
After each one every shopper checks its sign-in state and its basket, on every
instance, against what it knows it did. The table of outcomes is written to
artifacts/resilience.md and printed at the end of the run.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import pytest
import redis as redis_client
import requests

from harness.deploy_check.next_release import CHANNEL, RELEASE_NOTE, next_release
from harness.load.scenario import (
    PASSWORD,
    Outcome,
    ScriptedShopper,
    hold,
    run_traffic_for,
    server_orders,
    stopped_while_shopping,
    traffic,
    verify,
    write_table,
)
from harness.load.shopper import Shopper
from harness.servers.backing import RedisServer, postgres_base_url, private_redis
from harness.servers.cluster import Cluster, cluster_env, prepare_database, products_for_load
from harness.servers.container import run_job
from harness.servers.image import build_image
from harness.servers.shop import BASE_DIR, ShopServer
from harness.testing import access_lines

pytestmark = pytest.mark.resilience

SHOPPERS = 6
DATABASE = "shop_resilience"
REPORT = BASE_DIR / "artifacts" / "resilience.md"
CONCURRENT_ADDS = 50
HOT_ADDS = 200
BROWSERS = 10
NEXT_RELEASE_IMAGE = "localhost/evergreen-shop:next"
# Failures this soon after a SIGKILLed instance is started again still count as the kill's (in
# flight on killed): the tail of the kill's window, part of what scenario 1 allows, not a wait.
KILL_WINDOW_AFTER_RESTART = 0.5


# --- The rig -----------------------------------------------------------------------------------------
@dataclass
class Rig:
    cluster: Cluster
    redis: RedisServer
    shoppers: list[ScriptedShopper]
    products: list[tuple[int, str]]
    outcomes: list[Outcome] = field(default_factory=list)
    # Figures a table row cannot hold, printed under it.
    notes: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def rig(shop_image) -> Iterator[Rig]:
    database_url = f"{postgres_base_url()}/{DATABASE}"
    with private_redis() as redis:
        env = cluster_env(database_url, redis.url)
        prepare_database(env, fresh=True, image=shop_image)
        products = products_for_load(database_url, 40)
        cluster = Cluster(env, image=shop_image)
        try:
            cluster.start(3)
            shoppers = [ScriptedShopper(cluster.url, f"shopper{i}", products, seed=i) for i in range(SHOPPERS)]
            for shopper in shoppers:
                shopper.sign_up()
            rig = Rig(cluster, redis, shoppers, products)
            yield rig
        finally:
            cluster.stop()
            write_report(rig if "rig" in locals() else None)


def write_report(rig: Rig | None) -> None:
    write_table(REPORT, rig.outcomes if rig else [], rig.notes if rig else [])


def finish(rig: Rig, outcome: Outcome) -> None:
    verify(rig.shoppers, rig.cluster.in_rotation, outcome)
    rig.outcomes.append(outcome)
    write_report(rig)
    assert outcome.problems == 0, (outcome.row(), outcome.failures)
    assert outcome.requests > 0


# --- Scenarios, in order --------------------------------------------------------------------------------
def test_1_sigkill_one_instance_mid_traffic_then_start_it_again(rig):
    outcome = Outcome("1. SIGKILL one instance, start again")
    victim = rig.cluster.in_rotation[0]
    with traffic(rig.shoppers, outcome):
        run_traffic_for(2)  # the kill lands mid-traffic, on baskets with lines in them
        outcome.kill_window = True
        rig.cluster.kill(victim)
        hold(1)  # the fault: the instance stays dead 1 s while the others serve
        rig.cluster.start_again(victim)  # returns once it answers /healthz
        hold(KILL_WINDOW_AFTER_RESTART)
        outcome.kill_window = False
        run_traffic_for(3)  # shopping goes on; from here every failure is an error
    finish(rig, outcome)


def test_2_rolling_restart_of_every_instance(rig):
    outcome = Outcome("2. rolling restart (drain, SIGTERM, start)")
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)  # the restarts land mid-traffic
        rig.cluster.rolling_restart()  # each instance drained, SIGTERMed, started, healthy, back in nginx
        run_traffic_for(1)  # shopping goes on after the last one
    finish(rig, outcome)
    assert outcome.in_flight_on_killed == 0


def test_3_redis_flushall(rig):
    outcome = Outcome("3. Redis FLUSHALL")
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1.5)  # sessions and baskets are in Redis when it is emptied
        rig.redis.cli("FLUSHALL")
        run_traffic_for(2.5)  # shoppers shop on the emptied Redis: sessions come back from PostgreSQL
    finish(rig, outcome)


def test_4a_redis_stopped_for_ten_seconds(rig):
    outcome = Outcome("4a. Redis stopped 10 s, started")
    open_during, closed_after = stopped_while_shopping(
        rig.shoppers, outcome, stop=rig.redis.stop, start=rig.redis.start, breakers_open=rig.cluster.breakers_open
    )
    rig.notes.append(
        f"4a: {open_during} worker breakers were open with Redis stopped; all closed {closed_after:.1f} s "
        "after Redis returned, under traffic."
    )
    finish(rig, outcome)
    assert open_during > 0


def test_4b_redis_paused_while_baskets_change_and_one_signs_out(rig):
    outcome = Outcome("4b. Redis paused 10 s, one signs out")
    leaving, *others = rig.shoppers
    with traffic(others, outcome):
        run_traffic_for(1)  # Redis freezes mid-traffic
        rig.redis.pause()
        try:
            hold(3)  # the fault: Redis frozen, holding its copies, while baskets change
            old_cookies = requests.cookies.cookiejar_from_dict(leaving.client.http.cookies.get_dict())
            assert leaving.client.sign_out().status_code == 302
            hold(7)  # the rest of the 10 s pause, with the ended session's old copy still in Redis
        finally:
            rig.redis.resume()
        run_traffic_for(3)  # shoppers shop on as the breakers probe Redis and replay the journal
    # The ended session stays ended on every instance: nothing stale comes back.
    for instance in rig.cluster.in_rotation:
        me = requests.get(f"{instance.url}/accounts/me.json", cookies=old_cookies, timeout=10).json()
        assert me["authenticated"] is False, f"ended session came back on {instance.url}"
    assert leaving.client.sign_in(leaving.name, PASSWORD).status_code == 302
    leaving.basket = {}  # signing out ends the session and its basket; signing in starts afresh
    finish(rig, outcome)


def test_4c_redis_out_of_memory_refusing_writes(rig):
    outcome = Outcome("4c. Redis out of memory, noeviction")
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)  # Redis fills up mid-traffic
        rig.redis.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
        rig.redis.cli("CONFIG", "SET", "maxmemory", "1")  # every write is refused: OOM
        try:
            hold(5)  # the fault: writes fail; sessions come from PostgreSQL, their keys journaled
            refused = int(info(rig.redis)["errorstat_OOM"].split("=")[1].split(",")[0])
        finally:
            rig.redis.cli("CONFIG", "SET", "maxmemory", "0")
        run_traffic_for(3)  # the breakers probe, replay the journal and close
    finish(rig, outcome)
    assert refused > 0


def test_4d_redis_out_of_memory_evicting_sessions(rig):
    outcome = Outcome("4d. Redis out of memory, allkeys-lru")
    filler = redis_client.Redis(port=rig.redis.port).pipeline(transaction=False)
    for n in range(4000):  # other keys, in the general cache's database: 4 MB to evict from
        filler.set(f"filler:{n}", b"x" * 1024)
    filler.execute()
    evicted_before = int(info(rig.redis)["evicted_keys"])
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)  # sessions are in Redis beside the filler when it runs short
        used = int(info(rig.redis)["used_memory"])
        rig.redis.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        rig.redis.cli("CONFIG", "SET", "maxmemory", str(used - 2_000_000))  # about half the filler must go
        try:
            hold(5)  # the fault: every write evicts; an evicted session reloads from PostgreSQL
        finally:
            evicted = int(info(rig.redis)["evicted_keys"]) - evicted_before
            rig.redis.cli("CONFIG", "SET", "maxmemory", "0")
        run_traffic_for(1)
    finish(rig, outcome)
    assert evicted > 0


def info(redis: RedisServer) -> dict[str, str]:
    """Return Redis's INFO fields (all sections)."""
    lines = redis.cli("INFO", "everything").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


def test_5_scale_three_to_six_to_two(rig):
    outcome = Outcome("5. scale 3 → 6 → 2")
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)  # scaling out starts mid-traffic
        rig.cluster.scale(6)  # each new instance healthy, then put in nginx
        assert len(rig.cluster.in_rotation) == 6
        run_traffic_for(2)  # shoppers shop on six instances
        rig.cluster.scale(2)  # each instance drained from nginx, then SIGTERMed
        assert len(rig.cluster.in_rotation) == 2
        run_traffic_for(1)  # and on two
    finish(rig, outcome)
    rig.cluster.scale(3)


def concurrent_adds(url: str, shopper: ScriptedShopper, product_ids: list[int], n: int) -> list[tuple[int, int, float]]:
    """Post ``n`` adds at once (one product after another of ``product_ids``), each on its own connection.

    Every add carries the shopper's cookies. Return each one's (product, status,
    seconds); status 0 when no answer came.
    """
    cookies = shopper.client.http.cookies.get_dict()
    form = {"quantity": "1", "csrfmiddlewaretoken": cookies["csrftoken"]}

    def add(n: int) -> tuple[int, int, float]:
        product_id = product_ids[n % len(product_ids)]
        started = time.monotonic()
        try:
            response = requests.post(
                f"{url}/cart/add/{product_id}/", data=form, cookies=cookies, allow_redirects=False, timeout=30
            )
            status = response.status_code
            if status == 429:
                assert response.headers["Retry-After"] == "1"
        except requests.RequestException:
            status = 0
        return product_id, status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(add, range(n)))


def test_6_fifty_concurrent_adds_for_one_session_over_all_instances(rig):
    outcome = Outcome("6. 50 concurrent adds, one session")
    shopper = ScriptedShopper(rig.cluster.url, "concurrent", rig.products, seed=99)
    shopper.sign_up()
    product_id = rig.products[-1][0]

    answers = concurrent_adds(rig.cluster.url, shopper, [product_id], CONCURRENT_ADDS)

    for _, status, seconds in answers:  # added, or refused at once with nothing changed (429): never an error
        outcome.record(seconds, status not in (302, 429), f"{status} add")
    acknowledged = [status for _, status, _ in answers].count(302)
    shopper.basket = {str(product_id): acknowledged}
    rig.shoppers.append(shopper)
    add_path = f"/cart/add/{product_id}/"
    served_by = [len(access_lines(i.log_path, "POST", add_path, 302)) for i in rig.cluster.in_rotation]
    finish(rig, outcome)
    assert shopper.client.basket() == {str(product_id): acknowledged}
    assert all(count > 0 for count in served_by), served_by


def test_6b_one_hot_session_while_ten_others_browse(rig):
    outcome = Outcome(f"6b. hot session: {HOT_ADDS} adds at once, {BROWSERS} browse")
    browsers = [Shopper(rig.cluster.url, user_agent=f"browser-{n}") for n in range(BROWSERS)]
    pages = [f"/products/{slug}/" for _, slug in rig.products[:10]] + ["/cart/", "/"]
    seen: list[tuple[float, float, bool]] = []  # (started, seconds, failed) of each browsing request
    stop = threading.Event()

    def browse(client: Shopper, seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            started = time.monotonic()
            try:
                failed = client.get(rng.choice(pages)).status_code >= 500
            except requests.RequestException:
                failed = True
            seen.append((started, time.monotonic() - started, failed))

    hot = ScriptedShopper(rig.cluster.url, "hot", rig.products, seed=98)
    hot.sign_up()
    # Over four products: a line holds at most 99, and 200 adds on one would pass that.
    product_ids = [product_id for product_id, _ in rig.products[-6:-2]]
    threads = [threading.Thread(target=browse, args=(client, n)) for n, client in enumerate(browsers)]
    for thread in threads:
        thread.start()
    try:
        run_traffic_for(3)  # the browsers alone: their baseline
        burst_started = time.monotonic()
        answers = concurrent_adds(rig.cluster.url, hot, product_ids, HOT_ADDS)
        burst_ended = time.monotonic()
        run_traffic_for(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    baseline = Outcome("baseline", latencies=[s for t, s, _ in seen if t < burst_started])
    for started, seconds, failed in seen:
        if burst_started <= started < burst_ended:
            outcome.record(seconds, failed, "browsing")
    outcome.errors += sum(1 for t, _, failed in seen if failed and not burst_started <= t < burst_ended)
    outcome.errors += sum(1 for _, status, _ in answers if status not in (302, 429))
    added = Counter(str(product_id) for product_id, status, _ in answers if status == 302)
    acknowledged = sum(added.values())
    refusals = Outcome("429s", latencies=[s for _, status, s in answers if status == 429])
    hot.basket = dict(added)
    rig.shoppers.append(hot)
    rig.notes.append(
        f"6b: the {BROWSERS} browsers' p99 {baseline.percentile(0.99):.0f} ms alone, "
        f"{outcome.percentile(0.99):.0f} ms during the burst "
        f"({outcome.percentile(0.99) / max(baseline.percentile(0.99), 1):.1f}×); of {HOT_ADDS} adds, "
        f"{acknowledged} added, {len(refusals.latencies)} refused with 429 "
        f"(p99 {refusals.percentile(0.99):.0f} ms), {HOT_ADDS - acknowledged - len(refusals.latencies)} errors; "
        f"the burst lasted {burst_ended - burst_started:.1f} s."
    )
    finish(rig, outcome)
    assert hot.client.basket() == dict(added)
    assert acknowledged > 0


def test_7_rolling_deploy_of_the_next_release_with_an_additive_migration(rig, tmp_path):
    outcome = Outcome("7. rolling deploy v1 → v2, migration first")
    v2 = build_image(tag=NEXT_RELEASE_IMAGE, context=next_release(BASE_DIR, tmp_path / "v2"))
    crossing = ScriptedShopper(rig.cluster.url, "crossing", rig.products, seed=7)
    crossing.sign_up()
    with traffic(rig.shoppers, outcome):
        run_traffic_for(1)  # the migration job runs mid-traffic: v1 serves on, ignoring the new column
        run_job(v2, rig.cluster.env, "python", "manage.py", "migrate", "--noinput", "-v0")
        run_traffic_for(1)
        for number, old in enumerate(list(rig.cluster.in_rotation)):
            new = rig.cluster.replace(old, v2)  # the v2 container serves before the v1 one is drained and stopped
            if number == 0:  # one v2 beside two v1
                assert releases_serving(rig.cluster) == {"v1", "v2"}
                v1 = rig.cluster.in_rotation[0]
                orders = sessions_cross_releases(crossing, v1=v1, v2=new, outcome=outcome)
            run_traffic_for(1)  # shoppers shop on each mix of releases
    rig.shoppers.append(crossing)
    finish(rig, outcome)
    assert releases_serving(rig.cluster) == {"v2"}
    with psycopg.connect(rig.cluster.env["DATABASE_URL"]) as conn:
        stored = dict(conn.execute("SELECT id, channel FROM shop_order WHERE id = ANY(%s)", (list(orders),)))
    # v2 writes the column; v1 ignores it, and its orders have none.
    assert stored == {order: CHANNEL if release == "v2" else None for order, release in orders.items()}


def releases_serving(cluster: Cluster) -> set[str]:
    """Return which releases answer through the balancer (by v2's footer), over up to ten rounds of its rotation.

    The shoppers' traffic goes through the same round robin, so a few pages
    asked meanwhile may all land on one release; both answering shows within
    a few rounds.
    """
    seen: set[str] = set()
    for _ in range(10 * len(cluster.in_rotation)):
        seen.add("v2" if RELEASE_NOTE in requests.get(f"{cluster.url}/", timeout=10).text else "v1")
        if seen == {"v1", "v2"}:
            break
    return seen


def sessions_cross_releases(shopper: ScriptedShopper, *, v1: ShopServer, v2: ShopServer, outcome: Outcome) -> dict:
    """Change the shopper's session on each release and read it on the other; check out on each.

    Return the orders placed, each with the release that placed it.
    """
    through_balancer = shopper.client
    on = {}
    for release, instance in (("v1", v1), ("v2", v2)):
        on[release] = Shopper(instance.url, user_agent=through_balancer.http.headers["User-Agent"])
        on[release].http.cookies = through_balancer.http.cookies  # one browser, sent to one instance
    (first, _), (second, _) = shopper.products[:2]

    assert on["v2"].add(first).status_code == 302
    assert on["v1"].basket() == {str(first): 1}  # written by v2, read by v1
    assert on["v1"].add(second).status_code == 302
    assert on["v2"].basket() == {str(first): 1, str(second): 1}  # and back
    assert on["v1"].me()["authenticated"] and on["v2"].me()["authenticated"]

    shopper.basket = on["v2"].basket()
    placed = {}
    for release in ("v2", "v1"):
        if not shopper.basket:
            assert on[release].add(first).status_code == 302
            shopper.basket = {str(first): 1}
        shopper.client = on[release]
        before = set(shopper.orders)
        shopper.check_out(outcome)
        (order,) = shopper.orders - before
        placed[order] = release
    shopper.client = through_balancer
    for release in ("v1", "v2"):  # each release lists the orders both placed
        assert server_orders(on[release].get("/accounts/").text) == set(placed)
    return placed
