"""Scripted shoppers under fault injection: what they do, and how their outcome is counted.

Each shopper remembers what it did (basket, orders) and, after a fault, checks
what every instance shows it: still signed in, the same basket, each order once.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.load.shopper import Shopper
from harness.servers.shop import ShopServer
from harness.testing import wait_until

PASSWORD = "resilience-Passphrase-42"


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


def write_table(path: Path, outcomes: list[Outcome], notes: list[str]) -> None:
    """Write a resilience table: one row per scenario, then the notes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *(o.row() for o in outcomes), "", *notes]) + "\n")


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


@contextmanager
def traffic(shoppers: list[ScriptedShopper], outcome: Outcome) -> Iterator[None]:
    """Every shopper shops in its own thread for the duration of the block."""
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop, outcome)) for s in shoppers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


# --- How long, and until when ------------------------------------------------------------------
def run_traffic_for(seconds: float) -> None:
    """Let the shoppers shop for ``seconds``: a phase of the scenario, not a wait for anything.

    Before a fault, between its steps or after it, how long the shoppers shop is part of what the
    scenario is. A wait for something to happen is harness.testing.wait_until.
    """
    time.sleep(seconds)


def hold(seconds: float) -> None:
    """Keep a fault as it is for ``seconds`` while the shoppers shop: the length of the fault itself."""
    time.sleep(seconds)


def stopped_while_shopping(
    shoppers: list[ScriptedShopper],
    outcome: Outcome,
    *,
    stop: Callable[[], None],
    start: Callable[[], None],
    breakers_open: Callable[[], int],
    seconds: float = 10,
) -> tuple[int, float]:
    """Stop a store mid-traffic for ``seconds``, start it, and wait until every worker's breaker is closed again.

    Return how many worker breakers were open while it was stopped, and how
    long after its start the last one closed (shoppers shop throughout).
    """
    with traffic(shoppers, outcome):
        run_traffic_for(1)  # it stops mid-traffic
        stop()
        hold(seconds)  # the fault: stopped while shoppers shop
        open_during = breakers_open()
        start()  # returns once it answers
        returned = time.monotonic()
        # Shoppers shop on as the breakers probe the returned store, replay the journal and close.
        wait_until(lambda: breakers_open() == 0, timeout=120, interval=0.25)
        closed_after = time.monotonic() - returned
        run_traffic_for(1)
    return open_during, closed_after


def verify(shoppers: list[ScriptedShopper], instances: list[ShopServer], outcome: Outcome) -> None:
    """Every shopper: still signed in, same basket on every instance, orders placed exactly once."""
    for shopper in shoppers:
        if shopper.unsure:
            shopper.reconcile(outcome)
        if not shopper.client.me()["authenticated"]:
            outcome.logouts += 1
        for instance in instances:
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
