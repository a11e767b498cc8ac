"""Soak: scripted shoppers for a long while, and whether memory and connections stay flat.

    python -m harness.load.soak            # what `make soak` runs: 20 minutes
    SOAK_MINUTES=2 python -m harness.load.soak

Two shop instances (gunicorn, 2 workers each, production settings) behind nginx
round robin, on PostgreSQL and a private Redis; ten scripted shoppers sign up,
browse, fill baskets and check out the whole time. Every minute it samples each
worker's resident memory, the database's connections and Redis's memory, and it
prints (and writes to artifacts/soak.md) the first and last samples and how far
each moved. Not part of `make test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from harness.load.scenario import Outcome, ScriptedShopper, run_traffic_for, traffic
from harness.servers.backing import ensure, postgres_base_url, private_redis
from harness.servers.cluster import Cluster, cluster_env, prepare_database, products_for_load
from harness.servers.shop import BASE_DIR

DATABASE = "shop_soak"
SHOPPERS = 10
INSTANCES = 2
REPORT = BASE_DIR / "artifacts" / "soak.md"
SAMPLE_EVERY = 60.0


@dataclass
class Sample:
    minute: float
    worker_rss_mb: dict[int, float]
    database_connections: int
    redis_used_mb: float
    requests: int


def worker_pids(cluster: Cluster) -> list[int]:
    """Return the gunicorn worker processes of every instance (the masters' children)."""
    pids = []
    for instance in cluster.instances:
        command = ["ps", "--ppid", str(instance.process.pid), "-o", "pid="]
        pids += [int(pid) for pid in subprocess.run(command, capture_output=True, text=True).stdout.split()]
    return sorted(pids)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(cluster: Cluster, database_url: str, redis_cli, started: float, outcome: Outcome) -> Sample:
    with psycopg.connect(database_url, autocommit=True) as conn:
        connections = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    used = int(next(line for line in redis_cli("INFO", "memory").splitlines() if line.startswith("used_memory:"))[12:])
    return Sample(
        minute=(time.monotonic() - started) / 60,
        worker_rss_mb={pid: rss_mb(pid) for pid in worker_pids(cluster)},
        database_connections=connections,
        redis_used_mb=used / 1e6,
        requests=outcome.requests,
    )


def change(first: float, last: float) -> str:
    return f"{(last - first) / first * 100:+.1f} %" if first else "n/a"


def report(samples: list[Sample], outcome: Outcome) -> str:
    first, last = samples[0], samples[-1]
    rows = [
        f"Soak: {last.minute:.0f} minutes, {SHOPPERS} scripted shoppers, {INSTANCES} instances × 2 workers; "
        f"{outcome.requests} requests, {outcome.errors} errors, p50 {outcome.percentile(0.5):.0f} ms, "
        f"p99 {outcome.percentile(0.99):.0f} ms.",
        "",
        "| measure | at minute 1 | at the end | change |",
        "|---|---|---|---|",
    ]
    for pid in sorted(first.worker_rss_mb):
        start, end = first.worker_rss_mb[pid], last.worker_rss_mb.get(pid, 0.0)
        rows.append(f"| worker {pid} resident memory | {start:.1f} MB | {end:.1f} MB | {change(start, end)} |")
    rows.append(
        f"| PostgreSQL connections | {first.database_connections} | {last.database_connections} "
        f"| {change(first.database_connections, last.database_connections)} |"
    )
    rows.append(
        f"| Redis used memory | {first.redis_used_mb:.2f} MB | {last.redis_used_mb:.2f} MB "
        f"| {change(first.redis_used_mb, last.redis_used_mb)} |"
    )
    return "\n".join(rows) + "\n"


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "20"))
    ensure()
    database_url = f"{postgres_base_url()}/{DATABASE}"
    with private_redis() as redis:
        env = cluster_env(database_url, redis.url)
        prepare_database(env, fresh=True)
        products = products_for_load(database_url, 40)
        cluster = Cluster(env).start(INSTANCES)
        try:
            shoppers = [ScriptedShopper(cluster.url, f"soak{i}", products, seed=i) for i in range(SHOPPERS)]
            for shopper in shoppers:
                shopper.sign_up()
            outcome = Outcome("soak")
            samples: list[Sample] = []
            started = time.monotonic()
            with traffic(shoppers, outcome):
                # The first sample after a minute of traffic: workers have loaded what they load.
                while time.monotonic() - started < minutes * 60:
                    run_traffic_for(min(SAMPLE_EVERY, minutes * 60 - (time.monotonic() - started)))
                    samples.append(sample(cluster, database_url, redis.cli, started, outcome))
                    print(f"minute {samples[-1].minute:.1f}: {samples[-1]}", flush=True)
        finally:
            cluster.stop()
    text = report(samples, outcome)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
