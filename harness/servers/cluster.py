"""Run N shop instances behind nginx round robin, and break them on purpose.

Tests and the command line share this module:

    python -m harness.servers.cluster start 3    # prints the URL and each instance's pid and port
    python -m harness.servers.cluster status
    python -m harness.servers.cluster stop       # stops exactly what start started

Every instance is a gunicorn process with its own loopback port and 2 workers,
with production settings, on the real PostgreSQL and Redis; given an image, every
instance is a container of it instead (harness/servers/container.py). nginx balances them
round robin: no ip_hash, no sticky cookie. Taking an instance out (rolling
restart, scale-in) first drains it from nginx, then sends SIGTERM so in-flight
requests finish: what a platform does before stopping a container.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.servers.backing import ServiceUnavailable, apt_install, database_recreate, free_port, wait_listening
from harness.servers.container import ShopContainer, run_job
from harness.servers.shop import BASE_DIR, ShopServer, collectstatic, production_env

NGINX = "/usr/sbin/nginx"
# The bearer token of the harness's instances' /metrics.
METRICS_TOKEN = "harness-metrics-token"
STATE_FILE = BASE_DIR / ".cluster" / "state.json"
WORKERS_PER_INSTANCE = 2

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    # No keep-alive towards clients: a reload (drain, scale) closes idle client
    # connections, and a request sent on one at that moment would be reset.
    keepalive_timeout 0;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    upstream shop {{
        # Plain round robin: any instance may serve any request.
{servers}
        keepalive 32;
        # Below gunicorn's keepalive (5 s, config/gunicorn.conf.py): an idle
        # connection is always closed by nginx first. The other way round,
        # gunicorn may close one just as nginx sends a request on it, and a POST
        # sent there fails with 502 (nginx never replays it elsewhere).
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Retry elsewhere only what never reached an instance or is safe to
            # repeat: nginx never replays a POST (no non_idempotent here).
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def ensure_nginx() -> None:
    if not Path(NGINX).exists():
        apt_install("nginx")


def cluster_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Return the environment every instance of a cluster runs with."""
    return production_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CLIENT_IP_HEADER="X-Forwarded-For",
        TRUSTED_PROXY_COUNT="1",
        METRICS_TOKEN=METRICS_TOKEN,
        **extra,
    )


def scrape(url: str, token: str = METRICS_TOKEN) -> dict[tuple[str, tuple], float]:
    """Return an instance's metrics, by (sample name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    response.raise_for_status()
    text = response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass
class Cluster:
    """N gunicorn instances behind one nginx."""

    env: dict[str, str]
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shop-cluster-")))
    port: int = field(default_factory=free_port)
    instances: list[ShopServer] = field(default_factory=list)
    # Instances nginx sends requests to; an instance being drained is not in it.
    in_rotation: list[ShopServer] = field(default_factory=list)
    nginx: subprocess.Popen | None = None
    detach: bool = False
    # Run containers of this image instead of gunicorn on the host.
    image: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- Lifecycle --------------------------------------------------------------------
    def start(self, n: int) -> Cluster:
        """Start n instances and nginx; if anything fails, stop whatever did start."""
        try:
            return self._start(n)
        except BaseException:
            self.stop()
            raise

    def _start(self, n: int) -> Cluster:
        ensure_nginx()
        for directory in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.workdir / directory).mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        for path in (self.workdir / "tmp").rglob("*"):
            path.chmod(0o777)
        started = [self._new_instance() for _ in range(n)]
        for instance in started:
            instance.wait_healthy()
        self.in_rotation = list(started)
        self._write_conf()
        self.nginx = subprocess.Popen(
            [NGINX, "-c", str(self.workdir / "nginx.conf"), "-p", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "nginx-stderr.log", "ab"),  # noqa: SIM115
            start_new_session=self.detach,
        )
        wait_listening("127.0.0.1", self.port, timeout=15)
        return self

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        self.nginx = None
        for instance in self.instances:
            instance.stop()
        self.instances, self.in_rotation = [], []

    # --- One instance ------------------------------------------------------------------
    def _new_instance(self, image: str | None = None) -> ShopServer:
        log_path = self.workdir / f"instance-{len(self.instances)}.log"
        image = image or self.image
        if image:
            instance = ShopContainer(self.env, workers=WORKERS_PER_INSTANCE, log_path=log_path, image=image)
        else:
            instance = ShopServer(self.env, workers=WORKERS_PER_INSTANCE, log_path=log_path, detach=self.detach)
        instance.start(wait=False)
        self.instances.append(instance)
        return instance

    def kill(self, instance: ShopServer) -> None:
        """SIGKILL: no goodbye; nginx notices on the next request it sends there."""
        instance.stop(signal.SIGKILL)

    def start_again(self, instance: ShopServer) -> None:
        """Start a stopped instance on its old port and wait until it is healthy."""
        instance.start()

    def drain(self, instance: ShopServer) -> None:
        """Take the instance out of nginx's rotation; in-flight requests finish."""
        self.in_rotation = [i for i in self.in_rotation if i is not instance]
        self._reload()

    def undrain(self, instance: ShopServer) -> None:
        self.in_rotation.append(instance)
        self._reload()

    def restart(self, instance: ShopServer) -> None:
        """Drain, SIGTERM (in-flight requests finish), start again, put back."""
        self.drain(instance)
        instance.stop(signal.SIGTERM)
        instance.start()
        self.undrain(instance)

    def replace(self, old: ShopServer, image: str) -> ShopServer:
        """Replace ``old`` by a container of ``image``: the new one serves before the old one is drained and stopped."""
        new = self._new_instance(image)
        new.wait_healthy()
        self.undrain(new)
        self.drain(old)
        old.stop(signal.SIGTERM)
        self.instances.remove(old)
        return new

    def rolling_restart(self) -> None:
        for instance in list(self.in_rotation):
            self.restart(instance)

    def scale(self, k: int) -> None:
        """Grow or shrink to ``k`` instances in rotation."""
        while len(self.in_rotation) < k:
            instance = self._new_instance()
            instance.wait_healthy()
            self.undrain(instance)
        while len(self.in_rotation) > k:
            instance = self.in_rotation[-1]
            self.drain(instance)
            instance.stop(signal.SIGTERM)
            self.instances.remove(instance)

    def breakers_open(self) -> int:
        """Return how many worker processes of the instances in rotation have their session cache breaker open."""
        return int(
            sum(
                value
                for instance in self.in_rotation
                for (name, _), value in scrape(instance.url).items()
                if name == "shop_session_breaker_open"
            )
        )

    # --- nginx ---------------------------------------------------------------------------
    def _write_conf(self) -> None:
        servers = "\n".join(f"        server 127.0.0.1:{i.port} max_fails=1 fail_timeout=3s;" for i in self.in_rotation)
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(dir=self.workdir, servers=servers, port=self.port, user=user)
        (self.workdir / "nginx.conf").write_text(conf)

    def _nginx_workers(self) -> set[str]:
        result = subprocess.run(["ps", "--ppid", str(self._nginx_pid()), "-o", "pid="], capture_output=True, text=True)
        return set(result.stdout.split())

    def _nginx_pid(self) -> int:
        return int((self.workdir / "nginx.pid").read_text())

    def _reload(self) -> None:
        """Apply the rotation: new nginx workers take it; the old ones finish their requests."""
        self._write_conf()
        before = self._nginx_workers()
        os.kill(self._nginx_pid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = self._nginx_workers()
            if now and not (now & before):
                return
            time.sleep(0.05)
        raise ServiceUnavailable("nginx did not take its new configuration")

    # --- State for the command line ------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "url": self.url,
            "workdir": str(self.workdir),
            "nginx_pid": self.nginx.pid if self.nginx else None,
            "instances": [{"pid": i.process.pid, "port": i.port} for i in self.instances if i.process],
        }


def prepare_database(env: dict[str, str], *, fresh: bool = False, image: str | None = None) -> None:
    """Create (or, if ``fresh``, recreate) the database, migrate it, load the catalogue, collect static files.

    With an ``image``, migrations and the catalogue run as jobs in containers of
    it, as before a deploy; its static files were collected when it was built.
    """
    import psycopg

    url = env["DATABASE_URL"]
    if fresh:
        database_recreate(url)
    else:
        name = url.rsplit("/", 1)[-1]
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    for command in (["migrate", "--noinput", "-v0"], ["seed_shop", "--if-empty"]):
        if image:
            run_job(image, env, "python", "manage.py", *command)
        else:
            subprocess.run([sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True)
    if not image:
        collectstatic(env)


def products_for_load(database_url: str, limit: int) -> list[tuple[int, str]]:
    """Give every product plenty of stock (a load run buys a lot); return (id, slug) of the first ``limit``."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE shop_product SET stock = 1000000, is_active = true")
        return conn.execute("SELECT id, slug FROM shop_product ORDER BY id LIMIT %s", (limit,)).fetchall()


def _stop_pid(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "start" and len(argv) == 3 and argv[2].isdigit() and int(argv[2]) > 0:
        if STATE_FILE.exists():
            print(f"A cluster is already running ({STATE_FILE}); stop it first.", file=sys.stderr)
            return 1
        env = cluster_env(
            os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/shop",
            os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        )
        prepare_database(env)
        cluster = Cluster(env, detach=True).start(int(argv[2]))
        state = cluster.describe()
        STATE_FILE.parent.mkdir(exist_ok=True)
        STATE_FILE.write_text(json.dumps(state, indent=2))
        print(f"Shop cluster at {state['url']} (nginx pid {state['nginx_pid']}, round robin)")
        for number, instance in enumerate(state["instances"], 1):
            print(f"  instance {number}: pid {instance['pid']}, http://127.0.0.1:{instance['port']}")
        print("Stop it with: make cluster-stop")
        return 0
    if command == "status" and len(argv) == 2:
        print(STATE_FILE.read_text() if STATE_FILE.exists() else "No cluster is running.")
        return 0
    if command == "stop" and len(argv) == 2:
        if not STATE_FILE.exists():
            print("No cluster is running.")
            return 0
        state = json.loads(STATE_FILE.read_text())
        if state["nginx_pid"]:
            _stop_pid(state["nginx_pid"], signal.SIGQUIT)
        for instance in state["instances"]:
            _stop_pid(instance["pid"])
        shutil.rmtree(state["workdir"], ignore_errors=True)
        STATE_FILE.unlink()
        print(f"Stopped nginx and {len(state['instances'])} instance(s).")
        return 0
    print("usage: python -m harness.servers.cluster start N | status | stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
