"""A private Redis Sentinel deployment on loopback: one primary, one replica, three sentinels.

Used by the tests that prove the shop keeps its shoppers through a Redis
failover. Every server is a throwaway process under a temporary directory, on
ports of its own.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.servers.backing import RedisServer, ServiceUnavailable, free_port, wait_listening

MASTER = "mymaster"
# How long a primary may not answer before a sentinel thinks it down (ms).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
# Every server may become the primary: none waits (5 s by default) for more
# replicas before it starts a full resynchronisation.
SERVER_ARGS = ("--repl-diskless-sync-delay", "0")


@dataclass
class SentinelGroup:
    """Redis primary, replica and three sentinels with a quorum of two."""

    # The primary's name; django-redis shares connection pools per URL in a
    # process, so groups alive in one process need names of their own.
    master: str = MASTER
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shop-sentinel-")))
    primary: RedisServer | None = None
    replica: RedisServer | None = None
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    sentinels: list[subprocess.Popen] = field(default_factory=list)

    @property
    def hosts(self) -> str:
        """REDIS_SENTINELS for the shop."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelGroup:
        try:
            self.primary = RedisServer(workdir=self._dir("primary"), args=SERVER_ARGS).start()
            self.replica = RedisServer(
                workdir=self._dir("replica"), args=(*SERVER_ARGS, "--replicaof", "127.0.0.1", str(self.primary.port))
            ).start()
            self.wait_replicated(self.replica)
            for port in self.sentinel_ports:
                self._start_sentinel(port)
            self.wait_sentinels_agree()
        except BaseException:
            self.stop()
            raise
        return self

    def _dir(self, name: str) -> str:
        path = self.workdir / name
        path.mkdir(exist_ok=True)
        return str(path)

    def _start_sentinel(self, port: int) -> None:
        config = Path(self._dir(f"sentinel-{port}")) / "sentinel.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {config.parent}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.master} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {self.master} 1\n"
        )
        self.sentinels.append(
            subprocess.Popen(
                ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        wait_listening("127.0.0.1", port, timeout=10)

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True)

    def master_port(self) -> int | None:
        """The primary's port as the sentinels' majority sees it."""
        seen = []
        for port in self.sentinel_ports:
            try:
                address = self.sentinel(port).sentinel_get_master_addr_by_name(self.master)
            except redis.RedisError:
                continue
            if address:
                seen.append(int(address[1]))
        return max(set(seen), key=seen.count) if seen else None

    def wait_replicated(self, server: RedisServer, timeout: float = 20.0) -> None:
        """Wait until ``server`` is a replica with its link to the primary up."""
        client = redis.Redis(port=server.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = client.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                return
            time.sleep(0.1)
        raise ServiceUnavailable(f"redis on {server.port} is not replicating after {timeout:.0f}s")

    def wait_sentinels_agree(self, timeout: float = 30.0) -> None:
        """Wait until every sentinel knows the primary, its replica and the two other sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = 0
            for port in self.sentinel_ports:
                try:
                    master = self.sentinel(port).sentinel_master(self.master)
                except redis.RedisError:
                    continue
                if master.get("num-slaves", 0) >= 1 and master.get("num-other-sentinels", 0) >= 2:
                    ready += 1
            if ready == len(self.sentinel_ports):
                return
            time.sleep(0.2)
        raise ServiceUnavailable(f"sentinels did not agree on {self.master} after {timeout:.0f}s")

    def wait_promoted(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until the sentinels name a primary other than ``old_port``; return its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                return port
            time.sleep(0.05)
        raise ServiceUnavailable(f"no replica was promoted after {timeout:.0f}s")

    def wait_failover_done(self, new_port: int, timeout: float = 30.0) -> None:
        """Wait until every sentinel names ``new_port`` as the primary and none is still failing over.

        The sentinels name the promoted replica before the failover has ended (and before all of them
        have the new configuration): a killed primary that returned then could be taken for the primary.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._settled_on(port, new_port) for port in self.sentinel_ports):
                return
            time.sleep(0.05)
        raise ServiceUnavailable(f"the failover to {new_port} had not ended after {timeout:.0f}s")

    def _settled_on(self, sentinel_port: int, primary_port: int) -> bool:
        """Whether the sentinel on ``sentinel_port`` has ``primary_port`` as the primary, its failover over."""
        try:
            master = self.sentinel(sentinel_port).sentinel_master(self.master)
        except redis.RedisError:
            return False
        flags = master["flags"]
        flags = set(flags.split(",")) if isinstance(flags, str) else set(flags)
        return int(master["port"]) == primary_port and "failover_in_progress" not in flags

    def rejoin(self, old: RedisServer, new_primary_port: int) -> RedisServer:
        """Start a killed server again on its port, as a replica of the new primary."""
        server = RedisServer(
            port=old.port, workdir=old.workdir, args=(*SERVER_ARGS, "--replicaof", "127.0.0.1", str(new_primary_port))
        ).start()
        # The sentinels may send it REPLICAOF again meanwhile, which restarts the sync.
        self.wait_replicated(server, timeout=60)
        return server

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        self.sentinels = []
        for server in (self.replica, self.primary):
            if server is not None:
                server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
