"""Benchmark the shop under gunicorn with wrk and write BENCHMARKS.md (``make bench``).

Every figure is the median of three runs of wrk at fixed concurrency and
duration, against gunicorn (2 workers, production settings, DEBUG off) on
PostgreSQL and a private Redis server.
"""

from __future__ import annotations

import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.load.shopper import Shopper
from harness.servers.backing import RedisServer, apt_install, ensure
from harness.servers.cluster import cluster_env, prepare_database, products_for_load
from harness.servers.shop import BASE_DIR, ShopServer

RUNS = 5
DURATION = "8s"
CONNECTIONS = 16
THREADS = 2
CONCURRENT_ADDS = 16
BASKET_LINES = 5
REPORT = BASE_DIR / "BENCHMARKS.md"
DATABASE = "shop_bench"
# Every run starts after the same fixed rest: part of how the figures are measured (a change
# would change them), not a wait for anything; the wait for an idle machine follows it.
SETTLE_SECONDS = 1.0
# Then wait (at most this long) until the machine is this idle before a run.
QUIET_CPU = 0.10
QUIET_WAIT_MAX = 15.0
STOCK = {
    "stock db": {"SESSION_ENGINE": "django.contrib.sessions.backends.db"},
    "stock cache": {"SESSION_ENGINE": "django.contrib.sessions.backends.cache"},
    "stock cached_db": {"SESSION_ENGINE": "django.contrib.sessions.backends.cached_db"},
}
SESSIONS_FOR_ADDS = 16
# Each request: the next of 100 products, for the next of 16 shoppers (their own
# session and CSRF token): many shoppers adding, as in a shop.
ADD_SCRIPT = """
local ids = {%(ids)s}
local shoppers = {%(shoppers)s}
local i = 0
request = function()
  i = i + 1
  local shopper = shoppers[(i %% #shoppers) + 1]
  local path = "/cart/add/" .. ids[(math.floor(i / #shoppers) %% #ids) + 1] .. "/"
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded",
                                   ["Cookie"] = shopper[1]}, "quantity=1&csrfmiddlewaretoken=" .. shopper[2])
end
"""
# Every run reports its 95th percentile too (wrk's --latency table stops at 90 and 99).
P95_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format("p95 %d\\n", latency:percentile(95)))
end
"""
# Each request: a query picked at random from many, so most are not in the cache yet.
SEARCH_SCRIPT = """
local queries = {%(queries)s}
math.randomseed(os.time())
request = function()
  local path = "/search/?q=" .. queries[math.random(#queries)]
  return wrk.format("GET", path, {["Cookie"] = "%(cookie)s"})
end
"""
# The catalogue's benchmark: how many products, and what shoppers search for.
CATALOGUE_PRODUCTS = 100_000
SEARCHES = {"a word": "chocolate", "two words, out of order": "mug copper", "a misspelt word": "choclate"}


@dataclass
class Figure:
    label: str
    rps: float
    p50: float
    p99: float
    errors: int
    p95: float = 0.0

    def row(self, baseline: float | None = None) -> str:
        ratio = f"{self.rps / baseline:.2f}×" if baseline else "—"
        return f"| {self.label} | {self.rps:.0f} | {self.p50:.1f} | {self.p99:.1f} | {ratio} | {self.errors} |"

    def row_p95(self, baseline: float | None = None) -> str:
        ratio = f"{self.rps / baseline:.2f}×" if baseline else "—"
        return (
            f"| {self.label} | {self.rps:.0f} | {self.p50:.1f} | {self.p95:.1f} | {self.p99:.1f} | {ratio} "
            f"| {self.errors} |"
        )


TABLE_HEAD_P95 = "| what | req/s | p50 ms | p95 ms | p99 ms | ratio | non-2xx/3xx |\n|---|---|---|---|---|---|---|"


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_once(url: str, *, cookie: str = "", script: str | None = None) -> tuple[float, float, float, int, float]:
    """Run wrk once; return req/s, p50 ms, p99 ms, errors and p95 ms."""
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write((Path(script).read_text() if script else "") + P95_SCRIPT)
        lua.flush()
        output = subprocess.run([*command, "-s", lua.name, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))
    p95 = int(re.search(r"^p95 (\d+)$", output, re.MULTILINE).group(1)) / 1000
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return rps, p50, p99, errors, p95


def settle(database_url: str) -> None:
    """Let the previous run's writes finish before the next run starts.

    A run that writes (add to basket, a save per request) leaves PostgreSQL
    flushing WAL and vacuuming the session tables for seconds afterwards; on
    two cores that halves whatever is measured next. Vacuum and checkpoint
    now, then wait until the machine is idle.
    """
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM accounts_usersession, django_session")
        conn.execute("CHECKPOINT")
    time.sleep(SETTLE_SECONDS)
    deadline = time.monotonic() + QUIET_WAIT_MAX
    while cpu_busy(0.5) > QUIET_CPU and time.monotonic() < deadline:
        pass


def cpu_busy(seconds: float) -> float:
    """The share of CPU time the whole machine spent busy over ``seconds`` (Linux /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy_before, total_before = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    return (busy_after - busy_before) / max(1, total_after - total_before)


def measure(targets: dict[str, tuple[str, dict]], database_url: str) -> list[Figure]:
    """Measure every target RUNS times, interleaved in a new order each round, so drift hits all alike.

    The order matters: a target measured right after one that writes a lot
    starts on a busier machine. Each round shuffles it (the same way on every
    machine), so no target always follows the same one.
    """
    runs: dict[str, list] = {label: [] for label in targets}
    for round_ in range(RUNS):
        order = list(targets)
        random.Random(round_).shuffle(order)
        for label in order:
            url, kwargs = targets[label]
            settle(database_url)
            runs[label].append(wrk_once(url, **kwargs))
    figures = []
    for label, results in runs.items():
        print(f"  {label}: " + ", ".join(f"{r[0]:.0f} req/s" for r in results), flush=True)
        figures.append(
            Figure(
                label,
                statistics.median(r[0] for r in results),
                statistics.median(r[1] for r in results),
                statistics.median(r[2] for r in results),
                sum(r[3] for r in results),
                statistics.median(r[4] for r in results),
            )
        )
    return figures


def cookie_header(shopper: Shopper) -> str:
    """The cookies a browser sends once it has shown the shopper's messages: session and CSRF only.

    (wrk replays one header; a leftover messages cookie would be decoded, and
    on POSTs re-signed, on every request, which no browser does.)
    """
    cookies = shopper.http.cookies.get_dict()
    return "; ".join(f"{name}={cookies[name]}" for name in ("sessionid", "csrftoken") if name in cookies)


def shopper_with_basket(server: ShopServer, products: list[tuple[int, str]]) -> Shopper:
    shopper = Shopper(server.url)
    for product_id, _ in products[:BASKET_LINES]:
        assert shopper.add(product_id).status_code == 302
    assert len(shopper.basket()) == BASKET_LINES
    return shopper


def lost_lines(server: ShopServer, products: list[tuple[int, str]]) -> int:
    """16 different products added at once to one session: how many lines are missing after.

    The shop's store takes a few changes to one session at a time and answers
    the rest 429 with Retry-After; those are sent again after it, so every add
    is acknowledged in the end and every missing line is a lost write.
    """
    shopper = Shopper(server.url)
    shopper.add(products[0][0])  # the session exists before the race
    cookies, token = shopper.http.cookies.get_dict(), shopper.http.cookies["csrftoken"]
    import requests

    def add(product_id: int) -> int:
        """Add; when told to come back (429: too many changes to this session at once), come back."""
        for _ in range(10):
            response = requests.post(
                f"{server.url}/cart/add/{product_id}/",
                data={"quantity": "1", "csrfmiddlewaretoken": token},
                cookies=cookies,
                allow_redirects=False,
                timeout=30,
            )
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response.status_code

    ids = [product_id for product_id, _ in products[1 : CONCURRENT_ADDS + 1]]
    with ThreadPoolExecutor(max_workers=CONCURRENT_ADDS) as pool:
        assert set(pool.map(add, ids)) == {302}
    return CONCURRENT_ADDS + 1 - len(shopper.basket())


def search_queries(database_url: str) -> list[str]:
    """Return many distinct searches a shopper might type, from the catalogue's words, in a fixed random order.

    Two words (an adjective or material and an item, in either order), and
    single words with a letter missing.
    """
    import psycopg

    with psycopg.connect(database_url) as conn:
        names = [row[0] for row in conn.execute("SELECT DISTINCT name FROM shop_product")]
    first = sorted({name.split()[0].lower() for name in names if name.split()[0].isalpha()})
    last = sorted({name.split()[-1].lower() for name in names if name.split()[-1].isalpha()})
    two_words = [f"{a}+{b}" for a in first for b in last] + [f"{b}+{a}" for a in first[::3] for b in last]
    misspelt = [w[0] + w[2:] for w in sorted({*first, *last}) if len(w) >= 5]
    queries = two_words + misspelt
    random.Random(20261207).shuffle(queries)
    return queries


def catalogue_figures(
    shop, base_env: dict[str, str], redis_url: str, products: list[tuple[int, str]], workdir: Path
) -> tuple[list[Figure], list[Figure]]:
    """Measure list pages and search on a catalogue of CATALOGUE_PRODUCTS beside the demo's 225.

    Two databases, two servers (each with its own Redis databases), measured
    in turn: the basket page and the list pages on the big catalogue, and the
    same category page on the small one.
    """
    from config.caches import with_redis_db
    from harness.servers.backing import postgres_base_url

    big_url = f"{postgres_base_url()}/{DATABASE}_catalogue"
    big_env = {**base_env, "DATABASE_URL": big_url, "REDIS_URL": with_redis_db(redis_url, 2)}
    prepare_database(big_env, fresh=True)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "manage.py", "seed_shop", "--products", str(CATALOGUE_PRODUCTS)],
        cwd=BASE_DIR,
        env=big_env,
        check=True,
    )
    print(f"  {CATALOGUE_PRODUCTS} products loaded in {time.monotonic() - started:.1f} s", flush=True)
    big_products = products_for_load(big_url, 10)
    small, big = shop(), shop(**big_env)
    try:
        small_cookie = cookie_header(shopper_with_basket(small, products))
        cookie = cookie_header(shopper_with_basket(big, big_products))
        script = workdir / "search.lua"
        quoted = ", ".join(f'"{q}"' for q in search_queries(big_url))
        script.write_text(SEARCH_SCRIPT % {"queries": quoted, "cookie": cookie})
        big_label = f"{CATALOGUE_PRODUCTS:,} products"
        pages = measure(
            {
                f"cart page, 5 lines ({big_label})": (f"{big.url}/cart/", {"cookie": cookie}),
                f"home `/` ({big_label})": (f"{big.url}/", {"cookie": cookie}),
                f"category page ({big_label})": (f"{big.url}/category/garden/", {"cookie": cookie}),
                "category page (225 products)": (f"{small.url}/category/garden/", {"cookie": small_cookie}),
            },
            big_url,
        )
        searches = measure(
            {
                **{
                    f"search, {kind} (`{query}`)": (
                        f"{big.url}/search/?q={query.replace(' ', '+')}",
                        {"cookie": cookie},
                    )
                    for kind, query in SEARCHES.items()
                },
                "search, a different query each time (two words or a typo)": (big.url, {"script": str(script)}),
            },
            big_url,
        )
    finally:
        small.stop()
        big.stop()
    return pages, searches


def redis_benchmark(port: int, size: int, *, cluster: bool = False) -> dict[str, float]:
    """Return GET and SET per second on the Redis at ``port`` for values of ``size`` bytes (redis-benchmark)."""
    command = ["redis-benchmark", "-p", str(port), "-t", "get,set", "-d", str(size), "-n", "200000"]
    command += ["-c", str(CONNECTIONS), "-r", "100000", "-q", *(["--cluster"] if cluster else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {
        name.lower(): float(rate)
        for name, rate in re.findall(r"^(GET|SET): ([\d.]+) requests per second", output, re.M)
    }


def cluster_figures(shop, base_env: dict[str, str], products: list[tuple[int, str]]) -> tuple[list[Figure], dict]:
    """Session reads and the basket page on one Redis against a 3-primary cluster, in the same rounds.

    Also what one primary takes (redis-benchmark GET and SET of a session's
    size) and what a session costs it in memory: the capacity on paper.
    """
    import redis as redis_client

    from harness.servers.redis_cluster import RedisClusterGroup

    group = RedisClusterGroup().start()
    one = sharded = None
    try:
        one = shop()
        sharded = shop(REDIS_URL="redis://127.0.0.1/0", REDIS_CLUSTER_NODES=group.nodes, REDIS_REPLICA_ACKS="1")
        one_cookie = cookie_header(shopper_with_basket(one, products))
        sharded_cookie = cookie_header(shopper_with_basket(sharded, products))
        figures = measure(
            {
                "session read `/accounts/me.json`, one Redis": (f"{one.url}/accounts/me.json", {"cookie": one_cookie}),
                "session read `/accounts/me.json`, cluster": (
                    f"{sharded.url}/accounts/me.json",
                    {"cookie": sharded_cookie},
                ),
                "cart page, 5 lines, one Redis": (f"{one.url}/cart/", {"cookie": one_cookie}),
                "cart page, 5 lines, cluster": (f"{sharded.url}/cart/", {"cookie": sharded_cookie}),
            },
            base_env["DATABASE_URL"],
        )
        # The shopper's session: the one session key on the cluster (wrk's requests reuse its cookie).
        keys = [
            (port, key)
            for port in group.primaries()
            for key in redis_client.Redis(port=port).scan_iter(match="sessions:*", count=1000)
        ]
        assert len(keys) == 1, keys
        port, key = keys[0]
        node = redis_client.Redis(port=port)
        size, memory = node.strlen(key), node.memory_usage(key)
        alone = RedisServer().start()  # what one primary takes: a Redis like any of them, all its keys its own
        try:
            one_redis = redis_benchmark(alone.port, size)
        finally:
            alone.stop()
        capacity = {
            "size": size,
            "memory": memory,
            "one": one_redis,
            "cluster": redis_benchmark(next(iter(group.primaries())), size, cluster=True),
        }
    finally:
        for server in (one, sharded):
            if server is not None:
                server.stop()
        group.stop()
    return figures, capacity


def cluster_report(figures: list[Figure], capacity: dict) -> list[str]:
    """Return BENCHMARKS.md's Redis Cluster section."""
    by_label = {f.label: f for f in figures}
    one, sharded = capacity["one"], capacity["cluster"]
    per_gb = 1024**3 / capacity["memory"]
    reads = [
        (by_label[f"{what}, one Redis"], by_label[f"{what}, cluster"])
        for what in ("session read `/accounts/me.json`", "cart page, 5 lines")
    ]
    return [
        "## One Redis against a Redis Cluster",
        "",
        "Two servers measured in the same rounds: one on a Redis of its own, one on a cluster of 3 primaries "
        "and 3 replicas (`REDIS_CLUSTER_NODES`, session writes acknowledged by the shard's replica), all on this "
        "machine's 2 cores. A warm page view reads its session with one GET either way; on the cluster the "
        "client finds the primary from the key's slot.",
        "",
        TABLE_HEAD_P95,
        *(f.row_p95() for pair in reads for f in pair),
        "",
        *(
            f"- {a.label.rsplit(', ', 1)[0]}: the cluster gives {b.rps / a.rps:.2f}× one Redis's req/s, "
            f"p99 {b.p99:.1f} ms against {a.p99:.1f} ms."
            for a, b in reads
        ),
        "",
        f"What one primary takes (redis-benchmark, {CONNECTIONS} connections, values of a session's "
        f"{capacity['size']} bytes): {one['get']:,.0f} GET/s and {one['set']:,.0f} SET/s; the same against the "
        f"whole cluster (`--cluster`): {sharded['get']:,.0f} GET/s and {sharded['set']:,.0f} SET/s, its 3 "
        "primaries sharing the same 2 cores. A session with a 5-line basket takes "
        f"{capacity['memory']} bytes of Redis memory: {per_gb / 1e6:.1f} million sessions per GB.",
        "",
    ]


def versions() -> str:
    def out(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    import django
    import django_redis
    import gunicorn
    import redis

    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"Django {django.get_version()}, django-redis {django_redis.__version__}, redis-py {redis.__version__}, "
        f"gunicorn {gunicorn.__version__}, {out('psql', '--version')}, {out('redis-server', '--version')[:24]}, "
        f"{out('wrk', '--version')[:9]}"
    )


def main(argv: list[str]) -> int:
    only_catalogue, only_cluster = argv[1:] == ["catalogue"], argv[1:] == ["cluster"]
    ensure()
    if not shutil.which("wrk"):
        apt_install("wrk")
    from harness.servers.backing import postgres_base_url

    database_url = f"{postgres_base_url()}/{DATABASE}"
    redis = RedisServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    base_env = cluster_env(database_url, redis.url)
    prepare_database(base_env, fresh=True)
    products = products_for_load(database_url, 120)

    def shop(**extra: str) -> ShopServer:
        return ShopServer({**base_env, **extra}, workers=2, log_path=workdir / "gunicorn.log").start()

    servers: list[ShopServer] = []

    def add_script(server: ShopServer, name: str) -> str:
        shoppers = [shopper_with_basket(server, products) for _ in range(SESSIONS_FOR_ADDS)]
        entries = ", ".join(f'{{"{cookie_header(x)}", "{x.http.cookies["csrftoken"]}"}}' for x in shoppers)
        script = workdir / f"{name}.lua"
        script.write_text(ADD_SCRIPT % {"ids": ", ".join(str(pk) for pk, _ in products[20:120]), "shoppers": entries})
        return str(script)

    try:
        if only_catalogue:
            print("\n".join(catalogue_report(*catalogue_figures(shop, base_env, redis.url, products, workdir))))
            return 0
        if only_cluster:
            print("\n".join(cluster_report(*cluster_figures(shop, base_env, products))))
            return 0
        print("Endpoints, the shop's store:", flush=True)
        server = shop()
        servers.append(server)
        cookie = cookie_header(shopper_with_basket(server, products))
        endpoints = measure(
            {
                "product list `/`": (f"{server.url}/", {"cookie": cookie}),
                "product detail": (f"{server.url}/products/{products[0][1]}/", {"cookie": cookie}),
                "cart page, 5 lines": (f"{server.url}/cart/", {"cookie": cookie}),
                "add to basket (POST, CSRF, lock)": (server.url, {"script": add_script(server, "endpoint")}),
                "`/healthz` (ceiling)": (f"{server.url}/healthz", {}),
            },
            database_url,
        )
        shop_lost = lost_lines(server, products)
        server.stop()

        print("Cart page, by session engine:", flush=True)
        configs = {
            **STOCK,
            "stock db, SESSION_SAVE_EVERY_REQUEST": {**STOCK["stock db"], "SESSION_SAVE_EVERY_REQUEST": "true"},
            "shop's store": {},
        }
        targets = {}
        for label, extra in configs.items():
            server = shop(**extra)
            servers.append(server)
            targets[label] = (f"{server.url}/cart/", {"cookie": cookie_header(shopper_with_basket(server, products))})
        engines = measure(targets, database_url)
        for server in servers:
            server.stop()

        print("Add to basket, lock against no lock:", flush=True)
        lockless = shop(**STOCK["stock cached_db"], SESSION_UPDATE_LOCK="false")
        locked = shop()
        servers += [lockless, locked]
        figures = measure(
            {
                "stock cached_db, no lock": (lockless.url, {"script": add_script(lockless, "lockless")}),
                "shop's store, locked": (locked.url, {"script": add_script(locked, "locked")}),
            },
            database_url,
        )
        adds = [(figures[0], lost_lines(lockless, products)), (figures[1], lost_lines(locked, products))]
        lockless.stop()
        locked.stop()

        print("Cart page with Redis stopped:", flush=True)
        server = shop()
        servers.append(server)
        cart = (f"{server.url}/cart/", {"cookie": cookie_header(shopper_with_basket(server, products))})
        healthy_cart = measure({"cart page, Redis up": cart}, database_url)[0]
        redis.stop()
        outage = measure({"cart page, Redis stopped": cart}, database_url)
        server.stop()
        redis.start()

        print(f"The catalogue at {CATALOGUE_PRODUCTS:,} products:", flush=True)
        pages, searches = catalogue_figures(shop, base_env, redis.url, products, workdir)

        print("One Redis against a Redis Cluster:", flush=True)
        sharded = cluster_figures(shop, base_env, products)
    finally:
        for server in servers:
            server.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    write_report(endpoints, engines, adds, outage, healthy_cart, shop_lost, pages, searches, sharded)
    print(f"Wrote {REPORT.relative_to(BASE_DIR)}", flush=True)
    return 0


def catalogue_report(pages: list[Figure], searches: list[Figure]) -> list[str]:
    """Return BENCHMARKS.md's catalogue section: the figures, then the targets they meet or miss."""
    by_label = {f.label.split(" (")[0]: f for f in pages}
    cart, home = by_label["cart page, 5 lines"], by_label["home `/`"]
    big = next(f for f in pages if f.label.startswith("category page") and "225" not in f.label)
    small = next(f for f in pages if "225" in f.label)
    typed = [f for f in searches if "different query" not in f.label]
    distinct = next(f for f in searches if "different query" in f.label)
    home_ratio, category_ratio = home.rps / cart.rps, big.rps / small.rps
    slowest = max(typed, key=lambda f: f.p95).label.split(", ", 1)[1].split(" (")[0]
    return [
        f"## The catalogue at {CATALOGUE_PRODUCTS:,} products",
        "",
        f"`seed_shop --products {CATALOGUE_PRODUCTS}` into a second database, served beside the first (225 "
        "products) by a second server; list pages come from the cache once asked for (`shop/list_cache.py`). "
        "Ratios are to the basket page, measured in the same rounds.",
        "",
        TABLE_HEAD_P95,
        *(f.row_p95(cart.rps) for f in pages),
        "",
        f"Searches, at {CONNECTIONS} connections: the same query again and again (served from the cache after "
        "its first time), and a different one each time, picked at random among "
        "two-word and misspelt queries made from the catalogue's words (most never asked before: each runs its "
        "full-text search).",
        "",
        TABLE_HEAD_P95,
        *(f.row_p95() for f in searches),
        "",
        "Targets:",
        "",
        f"- Home page: {home_ratio:.2f}× the basket page's req/s (target ≥ 0.8×).",
        f"- Category page at {CATALOGUE_PRODUCTS:,} products: {category_ratio:.2f}× the same page at 225 "
        f"(target within 10 %: 0.90–1.10×).",
        f"- Search p95 at {CONNECTIONS} connections: " + ", ".join(f"{f.p95:.0f} ms" for f in typed) + " for a "
        f"word, two words and a misspelt word (target < 50 ms; the slowest: {slowest}); "
        f"{distinct.p95:.0f} ms when every query is new.",
        "",
    ]


def write_report(endpoints, engines, adds, outage, healthy_cart, shop_lost, pages, searches, sharded) -> None:
    head = "| what | req/s | p50 ms | p99 ms | ratio | non-2xx/3xx |\n|---|---|---|---|---|---|"
    stock_db = next(f.rps for f in engines if f.label == "stock db")
    save_every = next(f.rps for f in engines if f.label.startswith("stock db, SESSION"))
    stock_cache = next(f.rps for f in engines if f.label == "stock cache")
    unlocked = adds[0][0].rps
    shop_store = next(f.rps for f in engines if f.label == "shop's store")
    measured = REPORT.read_text().split("<!-- measured -->")[-1] if REPORT.exists() else ""
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` on {time.strftime('%Y-%m-%d')}: {versions()}.",
        f"wrk, {THREADS} threads, {CONNECTIONS} connections, {DURATION} per run; each figure is the median of "
        f"{RUNS} runs. gunicorn with 2 workers (4 threads each), production settings, DEBUG off, on PostgreSQL "
        "and a private Redis on this machine.",
        "",
        "## Endpoints (the shop's store)",
        "",
        head,
        *(f.row() for f in endpoints),
        "",
        "## Cart page by session engine (ratio to stock `db`)",
        "",
        head,
        *(f.row(stock_db) for f in engines if "SAVE_EVERY" not in f.label),
        "",
        "With an idle timeout enforced: Django offers it through `SESSION_SAVE_EVERY_REQUEST` (a write per "
        "request); the shop enforces it from a stamp written at most every 5 minutes (ratio to the former):",
        "",
        head,
        *(f.row(save_every) for f in engines if f.label == "shop's store" or "SAVE_EVERY" in f.label),
        "",
        f"## Add to basket: {CONCURRENT_ADDS} concurrent adds to one session",
        "",
        f"Load: {SESSIONS_FOR_ADDS} shoppers adding at once, each to their own basket. Race: "
        f"{CONCURRENT_ADDS} adds at once to one basket that holds one line, then count its lines.",
        "",
        "| what | req/s | p50 ms | p99 ms | ratio to no lock | lines lost of 17 |\n|---|---|---|---|---|---|",
        *(
            f"| {f.label} | {f.rps:.0f} | {f.p50:.1f} | {f.p99:.1f} | {f.rps / unlocked:.2f}× | {lost} |"
            for f, lost in adds
        ),
        "",
        f"The shop's endpoint run above lost {shop_lost} of 17 lines in the same race.",
        "",
        "## Cart page with Redis stopped (breaker open)",
        "",
        head,
        healthy_cart.row(),
        *(f.row() for f in outage),
        "",
        f"p99 with Redis stopped is {outage[0].p99 / healthy_cart.p99:.2f}× the healthy p99.",
        "",
        "## Targets",
        "",
        f"- Cart page, shop's store against stock `db`: {shop_store / stock_db:.2f}× (target ≥ 1.3×); "
        f"against stock `cache`: {shop_store / stock_cache:.2f}× (target ≥ 0.95×).",
        f"- Idle timeout enforced: {shop_store / save_every:.2f}× stock `db` with "
        "`SESSION_SAVE_EVERY_REQUEST` (target ≥ 2×).",
        f"- Add to basket with the lock: {adds[1][0].rps / unlocked:.2f}× stock `cached_db` without one "
        f"(target ≥ 0.9×); lines lost: {adds[0][1]} without the lock, {adds[1][1]} with it.",
        f"- Cart page p99 with Redis stopped: {outage[0].p99 / healthy_cart.p99:.2f}× healthy (target ≤ 3×).",
        "",
        *catalogue_report(pages, searches),
        *cluster_report(*sharded),
        "<!-- measured -->",
    ]
    REPORT.write_text("\n".join(lines) + measured)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
