"""A private Redis Cluster on loopback: three primaries, each with one replica.

For the tests and benchmarks that run the shop's caches on a cluster. Every
server is a throwaway ``redis-server --cluster-enabled yes`` under a temporary
directory, on a port of its own; ``redis-cli --cluster create`` spreads the
16,384 slots over the primaries and gives each a replica.

    python -m harness.servers.redis_cluster    # start one, print its nodes, stop on Ctrl-C
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from harness.servers.backing import RedisServer, ServiceUnavailable

PRIMARIES = 3
SLOTS = 16384
# How long a primary may not answer before the others count it as failed (ms);
# its replica is promoted then.
NODE_TIMEOUT_MS = 1000
SERVER_ARGS = (
    "--cluster-node-timeout",
    str(NODE_TIMEOUT_MS),
    "--repl-diskless-sync-delay",
    "0",
    # A cache: while one shard has no primary, the others keep serving (the default refuses every key).
    "--cluster-require-full-coverage",
    "no",
)
# A node also listens on its port + 10,000 (the cluster bus), which must be a port too.
BUS_OFFSET = 10000
PORTS = range(20000, 65536 - BUS_OFFSET)


def cluster_port() -> int:
    """Return a port free right now whose bus port is free too (the kernel's own picks are often too high)."""
    for port in random.sample(PORTS, 200):
        if _free(port) and _free(port + BUS_OFFSET):
            return port
    raise ServiceUnavailable("no free pair of ports for a Redis cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RedisClusterGroup:
    """Three primaries and three replicas forming one Redis Cluster."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shop-redis-cluster-")))
    servers: list[RedisServer] = field(default_factory=list)

    @property
    def nodes(self) -> str:
        """REDIS_CLUSTER_NODES for the shop: every node, as seeds."""
        return ",".join(f"127.0.0.1:{server.port}" for server in self.servers)

    def start(self) -> RedisClusterGroup:
        try:
            for number in range(2 * PRIMARIES):
                directory = self.workdir / f"node-{number}"
                directory.mkdir(parents=True, exist_ok=True)
                args = (
                    *SERVER_ARGS,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(directory / "nodes.conf"),
                )
                self.servers.append(RedisServer(port=cluster_port(), workdir=str(directory), args=args).start())
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{server.port}" for server in self.servers),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- Faults and changes, for the resilience scenarios ---------------------------------
    def stop_servers(self) -> None:
        """Stop every node, keeping each one's cluster configuration (not its data) to start again with."""
        for server in self.servers:
            server.stop()

    def start_servers(self) -> None:
        """Start every stopped node again; they form the same cluster, empty."""
        for server in self.servers:
            if not server.process:
                server.start()
        self.wait_ready()

    def flushall(self) -> None:
        """Empty every primary (FLUSHALL is one node's; its replicas follow)."""
        for port in self.primaries():
            self.server(port).cli("FLUSHALL")

    def reshard(self, slots: int, source: int, target: int) -> None:
        """Move ``slots`` slots, keys and all, from the primary on port ``source`` to the one on ``target``."""
        node_id = {port: redis.Redis(port=port).execute_command("CLUSTER", "MYID") for port in (source, target)}
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "reshard",
                f"127.0.0.1:{source}",
                "--cluster-from",
                _text(node_id[source]),
                "--cluster-to",
                _text(node_id[target]),
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            text=True,
        )

    def client(self) -> redis.RedisCluster:
        server = next(s for s in self.servers if s.process)
        return redis.RedisCluster(host="127.0.0.1", port=server.port, decode_responses=True)

    def primaries(self) -> dict[int, list[tuple[int, int]]]:
        """Return each primary's port with the slot ranges it serves, as every node that answers sees them."""
        for server in self.servers:
            if not server.process:
                continue
            try:
                shards = redis.Redis(port=server.port, decode_responses=True).execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            owners: dict[int, list[tuple[int, int]]] = {}
            for start, end, primary, *_ in shards:
                owners.setdefault(int(primary[1]), []).append((int(start), int(end)))
            return owners
        raise ServiceUnavailable("no node of the cluster answers")

    def server(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def owner(self, key: str) -> int:
        """Return the port of the primary that serves ``key``'s slot."""
        slot = key_slot(key.encode())
        for port, ranges in self.primaries().items():
            if any(start <= slot <= end for start, end in ranges):
                return port
        raise ServiceUnavailable(f"no primary serves slot {slot}")

    def replica_of(self, primary_port: int) -> RedisServer:
        """Return the running server that replicates the primary on ``primary_port``."""
        for server in self.servers:
            if server.process and server.port != primary_port:
                role = redis.Redis(port=server.port, decode_responses=True).execute_command("ROLE")
                if role[0] == "slave" and int(role[2]) == primary_port:
                    return server
        raise ServiceUnavailable(f"no replica of {primary_port}")

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until every running node says the cluster is ok and every slot is served by a primary with a replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.1)
        raise ServiceUnavailable("the Redis cluster did not become ready")

    def _ready(self) -> bool:
        """Every running node says ok and flags no node as failing, every slot is served by a running
        primary (three of them), and each primary has its replica, linked."""
        try:
            for server in self.servers:
                if not server.process:
                    continue
                node = redis.Redis(port=server.port, decode_responses=True)
                if "cluster_state:ok" not in node.execute_command("CLUSTER", "INFO"):
                    return False
                if " fail" in node.execute_command("CLUSTER", "NODES").replace(",fail", " fail"):
                    return False  # "fail" or "fail?" among some node's flags
            owners = self.primaries()
            linked = all(redis.Redis(port=port).info("replication").get("connected_slaves", 0) >= 1 for port in owners)
        except (redis.RedisError, ServiceUnavailable):
            return False
        covered = sum(end - start + 1 for ranges in owners.values() for start, end in ranges)
        running = {server.port for server in self.servers if server.process}
        return covered == SLOTS and len(owners) == PRIMARIES and set(owners) <= running and linked


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main() -> int:
    group = RedisClusterGroup().start()
    print(f"REDIS_CLUSTER_NODES={group.nodes}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        group.stop()


if __name__ == "__main__":
    sys.exit(main())
