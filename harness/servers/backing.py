"""Make sure PostgreSQL and Redis answer; start private Redis servers for tests.

``python -m harness.servers.backing ensure`` is what ``make test`` runs first:
it uses DATABASE_URL / REDIS_URL (or 127.0.0.1:5432 / 6379), starts the
machine's own servers when they are installed but stopped, and installs them
with apt when they are missing and we are root.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServiceUnavailable(RuntimeError):
    """A service could not be reached or started."""


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """Return the host and port a service URL names."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(host: str, port: int, *, timeout: float = 30.0) -> None:
    """Wait until host:port accepts connections or raise ServiceUnavailable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(host, port, timeout=0.2):
            return
        time.sleep(0.1)
    raise ServiceUnavailable(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def free_port() -> int:
    """Return a TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def apt_install(*packages: str) -> None:
    """Install Debian packages, as root only."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceUnavailable(f"{' '.join(packages)} missing and cannot install it (need root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"backing: installing {' '.join(packages)} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_postgres(url: str) -> None:
    """Make PostgreSQL at ``url`` answer, starting or installing the local one."""
    host, port = host_port(url, 5432)
    if is_listening(host, port):
        return
    if host not in LOOPBACK:
        raise ServiceUnavailable(f"PostgreSQL at {host}:{port} does not answer")
    installed_now = False
    if not glob.glob("/etc/postgresql/*/main"):
        apt_install("postgresql")
        installed_now = True
    for conf_dir in sorted(glob.glob("/etc/postgresql/*/main")):
        version = Path(conf_dir).parent.name
        if installed_now:
            _trust_loopback(Path(conf_dir) / "pg_hba.conf")
        print(f"backing: starting PostgreSQL {version}", flush=True)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
        )
    wait_listening(host, port)


def _trust_loopback(hba: Path) -> None:
    """Let the freshly installed server accept the passwordless test user on loopback."""
    rules = "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    hba.write_text(rules + hba.read_text())


def ensure_redis(url: str) -> None:
    """Make Redis at ``url`` answer, starting or installing the local one."""
    host, port = host_port(url, 6379)
    if is_listening(host, port):
        return
    if host not in LOOPBACK:
        raise ServiceUnavailable(f"Redis at {host}:{port} does not answer")
    if not shutil.which("redis-server"):
        apt_install("redis-server")
    print(f"backing: starting Redis on {port}", flush=True)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wait_listening(host, port)


def ensure_redis_server_binary() -> None:
    """Make sure ``redis-server`` exists, for tests that start private servers."""
    if not shutil.which("redis-server"):
        apt_install("redis-server")


def postgres_base_url() -> str:
    """Return DATABASE_URL without its database name, or the machine's PostgreSQL."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    return url.rsplit("/", 1)[0]


def database_recreate(url: str) -> None:
    """Drop and create the PostgreSQL database ``url`` names (a private one for a harness)."""
    import psycopg

    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> None:
    """Make sure Debian's Chromium is there for the browser tests."""
    if not Path(CHROMIUM).exists():
        apt_install("chromium")


def ensure() -> None:
    """Make the database, Redis and the browser the tests use answer."""
    ensure_postgres(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    ensure_redis(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    ensure_redis_server_binary()
    ensure_chromium()
    if not Path("/usr/sbin/nginx").exists():
        apt_install("nginx")
    ensure_manifest_validators()
    print("backing: PostgreSQL and Redis answer; Chromium, nginx and the manifest validators are installed", flush=True)


SYSTEM_PYTHON = "/usr/bin/python3"


def ensure_manifest_validators() -> None:
    """Debian's docker-compose (checks compose files) and Kubernetes API models (harness/deploy_check/manifests.py)."""
    missing = []
    if not shutil.which("docker-compose"):
        missing.append("docker-compose")
    if subprocess.run([SYSTEM_PYTHON, "-c", "import kubernetes, yaml"], capture_output=True).returncode != 0:
        missing.append("python3-kubernetes")
    if missing:
        apt_install(*missing)


@dataclass
class RedisServer:
    """A private, throwaway Redis server on its own loopback port."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="shop-redis-"))
    # More redis-server arguments, e.g. ("--replicaof", "127.0.0.1", "6380").
    args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening("127.0.0.1", self.port, timeout=10)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """Die at once (SIGKILL), as a crashed host would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it keeps its data and its port, but answers nothing."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def cli(self, *args: str) -> str:
        """Run a redis-cli command against this server and return its output."""
        result = subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True, capture_output=True, text=True)
        return result.stdout.strip()


@dataclass
class PostgresServer:
    """A private, throwaway PostgreSQL server on its own loopback port, trusting local connections.

    As root it runs as the ``postgres`` user (PostgreSQL refuses root), from the
    binaries of the machine's installed version.
    """

    port: int = field(default_factory=free_port)
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="shop-postgres-"))

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, binary: str, *args: str) -> None:
        (bindir,) = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
        command = [f"{bindir}/{binary}", *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def create(self) -> PostgresServer:
        if not glob.glob("/usr/lib/postgresql/*/bin"):
            apt_install("postgresql")
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run("initdb", "-D", f"{self.workdir}/data", "-U", "postgres", "--auth=trust", "--no-sync")
        return self.start()

    def start(self) -> PostgresServer:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", f"{self.workdir}/data", "-o", options, "-l", f"{self.workdir}/log", "-w", "start")
        wait_listening("127.0.0.1", self.port, timeout=30)
        return self

    def stop(self) -> None:
        """Stop at once, as an outage does: sessions are cut, nothing is waited for."""
        self._run("pg_ctl", "-D", f"{self.workdir}/data", "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        if os.path.exists(f"{self.workdir}/data/postmaster.pid"):
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """Run a private PostgreSQL server for the duration of the block."""
    server = PostgresServer().create()
    try:
        yield server
    finally:
        server.remove()


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """Run a private Redis server for the duration of the block."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[1:] == ["ensure"]:
        try:
            ensure()
        except (ServiceUnavailable, subprocess.CalledProcessError) as error:
            print(f"backing: {error}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m harness.servers.backing ensure", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
