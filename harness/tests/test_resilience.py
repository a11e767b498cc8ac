"""Fault injection: scripted shoppers against a cluster while instances and Redis are broken.

Scenarios run one after another on one cluster (module scope, in file order).
After each one every shopper checks its sign-in state and its basket, on every
instance, against what it knows it did. The table of outcomes is written to
artifacts/resilience.md and printed at the end of the run.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import requests

from harness.cluster import Cluster, cluster_env, prepare_database, products_for_load
from harness.server import BASE_DIR
from harness.services import RedisServer, postgres_base_url, private_redis
from harness.shopper import Shopper

pytestmark = pytest.mark.resilience

SHOPPERS = 6
PASSWORD = "resilience-Passphrase-42"
DATABASE = "shop_resilience"
REPORT = BASE_DIR / "artifacts" / "resilience.md"
CONCURRENT_ADDS = 50


# --- Counting ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    scenario: str
    requests: int = 0
    errors: int = 0  # 5xx or no answer, outside a SIGKILL's window
    in_flight_on_killed: int = 0  # 5xx or no answer while an instance was SIGKILLed
    logouts: int = 0
    lost_lines: int = 0
    duplicated_lines: int = 0
    order_mismatches: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    kill_window: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, failed: bool, what: str = "") -> None:
        with self.lock:
            if failed and len(self.failures) < 10:
                self.failures.append(what)
            self.requests += 1
            self.latencies.append(seconds)
            if failed and self.kill_window:
                self.in_flight_on_killed += 1
            elif failed:
                self.errors += 1

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    @property
    def problems(self) -> int:
        return self.errors + self.logouts + self.lost_lines + self.duplicated_lines + self.order_mismatches

    def row(self) -> str:
        return (
            f"| {self.scenario} | {self.requests} | {self.errors} | {self.in_flight_on_killed} | {self.logouts} "
            f"| {self.lost_lines} | {self.duplicated_lines} | {self.order_mismatches} "
            f"| {statistics.median(self.latencies) * 1000 if self.latencies else 0:.0f} | {self.percentile(0.99):.0f} |"
        )


HEADER = (
    "| scenario | requests | errors | in flight on killed | logouts | lost lines | duplicated lines "
    "| order mismatches | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|---|---|"
)


# --- A scripted shopper --------------------------------------------------------------------------
class ScriptedShopper:
    """Signs up, browses, fills a basket, checks out, and remembers what it did."""

    def __init__(self, url: str, name: str, products: list[tuple[int, str]], seed: int) -> None:
        self.client = Shopper(url, user_agent=f"resilience-shopper/{name}")
        self.name = name
        self.products = products
        self.rng = random.Random(seed)
        self.basket: dict[str, int] = {}
        self.orders: set[int] = set()
        self.unsure = False  # the last change failed: it may or may not have happened

    def sign_up(self) -> None:
        assert self.client.sign_up(self.name, PASSWORD).status_code == 302

    def _timed(self, outcome: Outcome, call, *args, **kwargs) -> requests.Response | None:
        started = time.monotonic()
        try:
            response = call(*args, **kwargs)
            what = f"{response.status_code} {args}"
        except requests.RequestException as error:
            response, what = None, f"{type(error).__name__}: {error} {args}"
        failed = response is None or response.status_code >= 500
        outcome.record(time.monotonic() - started, failed, what)
        if failed:
            self.unsure = True
        return None if failed else response

    def run(self, stop: threading.Event, outcome: Outcome) -> None:
        while not stop.is_set():
            if self.unsure:
                self.reconcile(outcome)
                continue
            self.step(outcome)

    def step(self, outcome: Outcome) -> None:
        roll = self.rng.random()
        product_id, slug = self.rng.choice(self.products)
        key = str(product_id)
        if roll < 0.25:
            self._timed(outcome, self.client.get, f"/products/{slug}/")
        elif roll < 0.6 and self.basket.get(key, 0) < 90:
            if self._timed(outcome, self.client.add, product_id):
                self.basket[key] = self.basket.get(key, 0) + 1
        elif roll < 0.8 and self.basket:
            key = self.rng.choice(sorted(self.basket))
            quantity = self.rng.randint(1, 5)
            if self._timed(outcome, self.client.post, f"/cart/update/{key}/", {"quantity": str(quantity)}):
                self.basket[key] = quantity
        elif roll < 0.85 and self.basket:
            self.check_out(outcome)
        else:
            self._timed(outcome, self.client.get, "/accounts/me.json")

    def check_out(self, outcome: Outcome) -> None:
        form = self._timed(outcome, self.client.get, "/checkout/")
        if form is None:
            return
        token = re.search(r'name="token" value="([0-9a-f-]+)"', form.text).group(1)
        data = {"name": self.name, "email": f"{self.name}@example.com", "address": "1 Test Lane", "token": token}
        placed = self._timed(outcome, self.client.post, "/checkout/", data)
        if placed is not None:
            self.orders.add(int(re.fullmatch(r"/orders/(\d+)/", placed.headers["Location"]).group(1)))
            self.basket = {}

    def reconcile(self, outcome: Outcome) -> None:
        """After a change that got no answer, learn what happened (only allowed around a SIGKILL)."""
        summary = self._timed(outcome, self.client.get, "/cart/summary.json")
        account = self._timed(outcome, self.client.get, "/accounts/")
        if summary is None or account is None:
            time.sleep(0.1)  # the cluster is still recovering; ask again
            return
        self.basket = summary.json()["lines"]
        self.orders = server_orders(account.text)
        self.unsure = False


def server_orders(account_page: str) -> set[int]:
    return {int(n) for n in re.findall(r'href="/orders/(\d+)/"', account_page)}


# --- The rig -----------------------------------------------------------------------------------------
@dataclass
class Rig:
    cluster: Cluster
    redis: RedisServer
    shoppers: list[ScriptedShopper]
    products: list[tuple[int, str]]
    outcomes: list[Outcome] = field(default_factory=list)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    database_url = f"{postgres_base_url()}/{DATABASE}"
    with private_redis() as redis:
        env = cluster_env(database_url, redis.url)
        prepare_database(env, fresh=True)
        products = products_for_load(database_url, 40)
        cluster = Cluster(env)
        try:
            cluster.start(3)
            shoppers = [ScriptedShopper(cluster.url, f"shopper{i}", products, seed=i) for i in range(SHOPPERS)]
            for shopper in shoppers:
                shopper.sign_up()
            rig = Rig(cluster, redis, shoppers, products)
            yield rig
        finally:
            cluster.stop()
            write_report(rig.outcomes if "rig" in locals() else [])


def write_report(outcomes: list[Outcome]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join([HEADER, *(o.row() for o in outcomes)]) + "\n")


@contextmanager
def traffic(rig: Rig, outcome: Outcome, *, shoppers: list[ScriptedShopper] | None = None) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop, outcome)) for s in (shoppers or rig.shoppers)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def verify(rig: Rig, outcome: Outcome) -> None:
    """Every shopper: still signed in, same basket on every instance, orders placed exactly once."""
    for shopper in rig.shoppers:
        if shopper.unsure:
            shopper.reconcile(outcome)
        if not shopper.client.me()["authenticated"]:
            outcome.logouts += 1
        for instance in rig.cluster.in_rotation:
            seen = requests.get(
                f"{instance.url}/cart/summary.json", cookies=shopper.client.http.cookies, timeout=10
            ).json()["lines"]
            for key, quantity in shopper.basket.items():
                if seen.get(key, 0) < quantity:
                    outcome.lost_lines += 1
                elif seen[key] > quantity:
                    outcome.duplicated_lines += 1
            outcome.duplicated_lines += len(set(seen) - set(shopper.basket))
        if server_orders(shopper.client.get("/accounts/").text) != shopper.orders:
            outcome.order_mismatches += 1


def finish(rig: Rig, outcome: Outcome) -> None:
    verify(rig, outcome)
    rig.outcomes.append(outcome)
    write_report(rig.outcomes)
    assert outcome.problems == 0, (outcome.row(), outcome.failures)
    assert outcome.requests > 0


# --- Scenarios, in order --------------------------------------------------------------------------------
def test_1_sigkill_one_instance_mid_traffic_then_start_it_again(rig):
    outcome = Outcome("1. SIGKILL one instance, start again")
    victim = rig.cluster.in_rotation[0]
    with traffic(rig, outcome):
        time.sleep(2)
        outcome.kill_window = True
        rig.cluster.kill(victim)
        time.sleep(1)
        rig.cluster.start_again(victim)
        time.sleep(0.5)
        outcome.kill_window = False
        time.sleep(3)
    finish(rig, outcome)


def test_2_rolling_restart_of_every_instance(rig):
    outcome = Outcome("2. rolling restart (drain, SIGTERM, start)")
    with traffic(rig, outcome):
        time.sleep(1)
        rig.cluster.rolling_restart()
        time.sleep(1)
    finish(rig, outcome)
    assert outcome.in_flight_on_killed == 0


def test_3_redis_flushall(rig):
    outcome = Outcome("3. Redis FLUSHALL")
    with traffic(rig, outcome):
        time.sleep(1.5)
        rig.redis.cli("FLUSHALL")
        time.sleep(2.5)
    finish(rig, outcome)


def test_4a_redis_stopped_for_ten_seconds(rig):
    outcome = Outcome("4a. Redis stopped 10 s, started")
    with traffic(rig, outcome):
        time.sleep(1)
        rig.redis.stop()
        time.sleep(10)
        rig.redis.start()
        time.sleep(3)
    finish(rig, outcome)


def test_4b_redis_paused_while_baskets_change_and_one_signs_out(rig):
    outcome = Outcome("4b. Redis paused 10 s, one signs out")
    leaving, *others = rig.shoppers
    with traffic(rig, outcome, shoppers=others):
        time.sleep(1)
        rig.redis.pause()
        try:
            time.sleep(3)
            old_cookies = requests.cookies.cookiejar_from_dict(leaving.client.http.cookies.get_dict())
            assert leaving.client.sign_out().status_code == 302
            time.sleep(7)
        finally:
            rig.redis.resume()
        time.sleep(3)
    # The ended session stays ended on every instance: nothing stale comes back.
    for instance in rig.cluster.in_rotation:
        me = requests.get(f"{instance.url}/accounts/me.json", cookies=old_cookies, timeout=10).json()
        assert me["authenticated"] is False, f"ended session came back on {instance.url}"
    assert leaving.client.sign_in(leaving.name, PASSWORD).status_code == 302
    leaving.basket = {}  # signing out ends the session and its basket; signing in starts afresh
    finish(rig, outcome)


def test_5_scale_three_to_six_to_two(rig):
    outcome = Outcome("5. scale 3 → 6 → 2")
    with traffic(rig, outcome):
        time.sleep(1)
        rig.cluster.scale(6)
        assert len(rig.cluster.in_rotation) == 6
        time.sleep(2)
        rig.cluster.scale(2)
        assert len(rig.cluster.in_rotation) == 2
        time.sleep(1)
    finish(rig, outcome)
    rig.cluster.scale(3)


def test_6_fifty_concurrent_adds_for_one_session_over_all_instances(rig):
    outcome = Outcome("6. 50 concurrent adds, one session")
    shopper = ScriptedShopper(rig.cluster.url, "concurrent", rig.products, seed=99)
    shopper.sign_up()
    product_id = rig.products[-1][0]
    cookies = shopper.client.http.cookies.get_dict()
    form = {"quantity": "1", "csrfmiddlewaretoken": cookies["csrftoken"]}

    def add(_: int) -> None:
        started = time.monotonic()
        try:
            response = requests.post(
                f"{rig.cluster.url}/cart/add/{product_id}/",
                data=form,
                cookies=cookies,
                allow_redirects=False,
                timeout=30,
            )
            failed = response.status_code != 302
        except requests.RequestException:
            failed = True
        outcome.record(time.monotonic() - started, failed)

    with ThreadPoolExecutor(max_workers=CONCURRENT_ADDS) as pool:
        list(pool.map(add, range(CONCURRENT_ADDS)))
    shopper.basket = {str(product_id): CONCURRENT_ADDS}
    rig.shoppers.append(shopper)
    served_by = [
        len(re.findall(rf'"POST /cart/add/{product_id}/ HTTP/1.1" 302', i.log_path.read_text()))
        for i in rig.cluster.in_rotation
    ]
    finish(rig, outcome)
    assert shopper.client.basket() == {str(product_id): CONCURRENT_ADDS}
    assert all(count > 0 for count in served_by), served_by
