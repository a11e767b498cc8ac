"""The image as a platform runs it: what it holds, and Cloud Run's container contract.

Every container here runs as the harness runs them all (read-only root with no
tmpfs added, no capabilities, no privilege gain), on a private database that
the image's own migration job prepared. The figures (image size, cold starts,
SIGTERM drain) go to artifacts/container.md.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import requests
import yaml

from harness.load.scenario import hold
from harness.load.shopper import Shopper
from harness.servers.backing import postgres_base_url, private_redis
from harness.servers.cluster import cluster_env, prepare_database, products_for_load
from harness.servers.container import STOP_GRACE_SECONDS, ShopContainer, podman
from harness.servers.image import BASE_DIR, image_size, image_user
from harness.testing import PASSWORD, access_lines, log_entries, wait_until

pytestmark = pytest.mark.container

DATABASE = "shop_container"
REPORT = BASE_DIR / "artifacts" / "container.md"
# Cloud Run: SIGTERM, then SIGKILL 10 s later; the shop promises to finish in-flight requests in 8.
DRAIN_BUDGET = 8.0
# What the in-flight request waits for after SIGTERM: long enough to be plainly in flight.
HELD_AFTER_SIGTERM = 2.0


def startup_budget() -> float:
    """Return how long Cloud Run's startup probe (deploy/cloudrun/service.yaml) lets a container take to be ready."""
    service = yaml.safe_load((BASE_DIR / "deploy" / "cloudrun" / "service.yaml").read_text())
    probe = service["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    return probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe["failureThreshold"]


@dataclass
class Rig:
    image: str
    env: dict[str, str]
    database_url: str
    product_id: int
    figures: dict[str, str]


@pytest.fixture(scope="module")
def rig(shop_image) -> Iterator[Rig]:
    database_url = f"{postgres_base_url()}/{DATABASE}"
    with private_redis() as redis:
        env = cluster_env(database_url, redis.url)
        prepare_database(env, fresh=True, image=shop_image)  # migrate and seed as jobs of the image
        ((product_id, _),) = products_for_load(database_url, 1)
        figures = {"image size": f"{image_size(shop_image) / 1e6:.0f} MB"}
        yield Rig(shop_image, env, database_url, product_id, figures)
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"| {what} | {figure} |\n" for what, figure in figures.items())
        REPORT.write_text("| container | figure |\n|---|---|\n" + rows)


def in_container(image: str, script: str) -> str:
    """Run a Python script in a throwaway container of ``image``; return what it printed."""
    return podman("run", "--rm", "--network=none", image, "python", "-c", script).stdout


def ready_after_start(container: ShopContainer) -> float:
    """Wait for the container's first /readyz 200; return the seconds since ``podman run`` was called."""

    def ready() -> bool:
        try:
            return requests.get(f"{container.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, timeout=startup_budget(), interval=0.02)
    return time.monotonic() - container.started_at


# --- The image -------------------------------------------------------------------------------------------
def test_the_image_holds_the_app_and_its_dependencies_only(rig):
    found = in_container(
        rig.image,
        "import glob, json, os, shutil\n"
        "unwanted = [p for p in glob.glob('/app/**', recursive=True, include_hidden=True)\n"
        "            if os.path.basename(p.rstrip('/')) in {'tests', 'conftest.py', 'harness', 'deploy', '.git',\n"
        "                'Dockerfile', '.dockerignore', 'requirements-dev.txt', 'pyproject.toml', '.ci', '.venv'}]\n"
        "compilers = [c for c in ('gcc', 'cc', 'c++', 'g++', 'clang', 'x86_64-linux-gnu-gcc-12', 'ld', 'make')\n"
        "             if shutil.which(c)]\n"
        "print(json.dumps([sorted(unwanted), compilers, os.path.exists('/run/secrets/pip-ca'), os.listdir('/app')]))",
    )
    unwanted, compilers, ca_left, listing = json.loads(found)

    assert unwanted == [] and compilers == [] and ca_left is False
    assert {"manage.py", "accounts", "cart", "config", "durable_sessions", "shop", "staticfiles"} <= set(listing)


def test_the_image_runs_as_a_non_root_user(rig):
    assert image_user(rig.image) == "shop"
    assert podman("run", "--rm", "--network=none", rig.image, "id", "-u").stdout.strip() == "10001"


def test_a_container_writes_nothing_to_its_file_system_even_when_it_may(rig, tmp_path):
    # Writable root this once (and no user entry added by podman): whatever the shop wrote would show in the diff.
    container = ShopContainer(
        rig.env, image=rig.image, user="54321", extra_options=("--read-only=false", "--passwd=false")
    ).start()
    try:
        shopper = Shopper(container.url)
        assert shopper.sign_up("writer", PASSWORD).status_code == 302
        for path in ("/", "/cart/", "/accounts/", "/readyz"):
            assert shopper.get(path).status_code == 200, path
        stylesheet = re.search(r'href="(/static/css/site\.[0-9a-f]+\.css)"', shopper.get("/").text).group(1)
        assert shopper.get(stylesheet).status_code == 200  # collected and hashed when the image was built
        assert shopper.add(rig.product_id).status_code == 302

        changes = podman("diff", "--format", "json", container.name).stdout
    finally:
        container.stop()

    # podman itself mounts /etc/hosts and /etc/resolv.conf, which touches /etc (the directory, no file in it).
    assert json.loads(changes or "{}") in ({}, {"changed": ["/etc"]})


# --- Cloud Run's contract ---------------------------------------------------------------------------------
def test_cloud_run_contract_port_cold_start_drain_on_sigterm_and_logs(rig, tmp_path):
    log = tmp_path / "container.log"
    # Any UID, as some platforms assign; $PORT is a port of the harness's choosing. The request held in
    # flight below waits on a lock longer than the default lock_timeout would let it.
    env = {**rig.env, "DATABASE_LOCK_TIMEOUT": "20000"}
    container = ShopContainer(env, image=rig.image, user="54321", workers=2, log_path=log).start(wait=False)
    cold_start = ready_after_start(container)
    rig.figures["cold start, container start to first /readyz 200"] = f"{cold_start:.2f} s"
    assert cold_start < startup_budget()
    settings = container.inspect()["HostConfig"]
    assert settings["ReadonlyRootfs"] is True and settings["CapDrop"] and not settings["CapAdd"]

    shopper = Shopper(container.url)
    assert shopper.sign_up("drained", PASSWORD).status_code == 302
    assert shopper.add(rig.product_id).status_code == 302

    # Hold every session row's lock, so the next change is a request in flight when SIGTERM comes.
    with psycopg.connect(rig.database_url) as holder:
        holder.execute("LOCK TABLE accounts_usersession IN EXCLUSIVE MODE")
        answer: dict[str, object] = {}
        request = threading.Thread(target=lambda: answer.update(response=shopper.add(rig.product_id)))
        request.start()
        wait_until(lambda: waiting_on_a_lock(rig.database_url))
        sigterm_at = time.monotonic()
        stopping = threading.Thread(target=lambda: answer.update(exit_code=container.stop()))
        stopping.start()
        wait_until(lambda: "Handling signal: term" in log.read_text())
        hold(HELD_AFTER_SIGTERM)  # the request stays in flight this long after SIGTERM
        holder.commit()
    request.join(timeout=30)
    stopping.join(timeout=30)
    drained_in = time.monotonic() - sigterm_at
    rig.figures["SIGTERM to exit, one request in flight 2 s"] = f"{drained_in:.2f} s"

    assert answer["response"].status_code == 302
    assert answer["exit_code"] == 0  # stopped by itself, not SIGKILLed after the grace period
    assert drained_in < min(DRAIN_BUDGET, STOP_GRACE_SECONDS)
    # Its standard output: one JSON object a line, gunicorn's and the shop's, each request's access line among them.
    entries = log_entries(log)
    assert all({"severity", "message", "time"} <= entry.keys() for entry in entries)
    assert access_lines(log, "GET", "/readyz", 200)
    assert len(access_lines(log, "POST", f"/cart/add/{rig.product_id}/", 302)) == 2

    # A new container (a new cold start) finds both additions: the drained request's one was kept.
    container.start(wait=False)
    rig.figures["cold start, second container"] = f"{ready_after_start(container):.2f} s"
    try:
        assert shopper.basket() == {str(rig.product_id): 2}
    finally:
        container.stop()


def waiting_on_a_lock(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return conn.execute(query).fetchone()[0] > 0
