"""A real Redis Cluster on 127.0.0.1 for tests and benchmarks: N primaries, each with its
replicas, every node the project's own ``redis-server`` with RediSearch loaded.

There is no ``redis-cli --cluster create`` here, so the cluster is formed with the commands
that tool sends: slots are split evenly over the primaries (``CLUSTER ADDSLOTSRANGE``), the
nodes meet (``CLUSTER MEET``), and each replica follows its primary (``CLUSTER REPLICATE``).
``cluster-require-full-coverage no``: while one primary's slots have no primary, the other
slots keep answering (what a cache wants: one shard down is a third of the namespaces passing
through, not all of them).
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from service.embedded_redis import EmbeddedRedis, free_port

SLOTS = 16384


@dataclass
class ClusterNode:
    server: EmbeddedRedis
    bus_port: int
    node_id: str = ""

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, timeout_s: float = 2.0) -> "redis.Redis":
        return redis.Redis(port=self.port, socket_timeout=timeout_s, socket_connect_timeout=0.5)


class EmbeddedCluster:
    def __init__(
        self,
        data_dir: Path,
        primaries: int = 3,
        replicas_per_primary: int = 1,
        node_timeout_ms: int = 1000,
        appendfsync: str = "everysec",
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.primary_count = primaries
        self.replicas_per_primary = replicas_per_primary
        self.node_timeout_ms = node_timeout_ms
        self.appendfsync = appendfsync
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        """The URL the service takes for a cluster (any node seeds the topology)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def seed_ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def _node(self, index: int) -> ClusterNode:
        bus_port = free_port()
        server = EmbeddedRedis(
            self.data_dir / f"node-{index}",
            appendfsync=self.appendfsync,
            extra_args=(
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                # the bus port is chosen too (port + 10000 may be taken, or past 65535)
                "--cluster-port", str(bus_port),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-require-full-coverage", "no",
                # a primary that lost its replicas still takes writes (the test kills one)
                "--cluster-allow-replica-migration", "no",
            ),
        )  # fmt: skip
        return ClusterNode(server.start(), bus_port)

    def start(self, timeout_s: float = 30.0) -> "EmbeddedCluster":
        total = self.primary_count * (1 + self.replicas_per_primary)
        self.nodes = [self._node(i) for i in range(total)]
        for node in self.nodes:
            node.node_id = _command(node.client(), "CLUSTER", "MYID").decode()
        primaries = self.nodes[: self.primary_count]
        share = SLOTS // self.primary_count
        for number, node in enumerate(primaries):
            first = number * share
            last = SLOTS - 1 if number == self.primary_count - 1 else first + share - 1
            _command(node.client(), "CLUSTER", "ADDSLOTSRANGE", first, last)
            # distinct epochs, so the first failover has no collision to resolve
            _command(node.client(), "CLUSTER", "SET-CONFIG-EPOCH", number + 1)
        seed = self.nodes[0].client()
        for node in self.nodes[1:]:
            _command(seed, "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        self._wait(lambda: all(self._known(node) == total for node in self.nodes), timeout_s)
        for number, node in enumerate(self.nodes[self.primary_count :]):
            primary = primaries[number % self.primary_count]
            _command(node.client(), "CLUSTER", "REPLICATE", primary.node_id)
        self.wait_healthy(timeout_s)
        return self

    def _known(self, node: ClusterNode) -> int:
        with contextlib.suppress(redis.RedisError):
            reply = _command(node.client(), "CLUSTER", "NODES")
            text = reply.decode() if isinstance(reply, bytes) else str(reply)
            return len([line for line in text.splitlines() if line.strip()])
        return 0

    @staticmethod
    def _wait(condition: "Callable[[], bool]", timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not settle in time")
            time.sleep(0.05)

    def _state_ok(self, node: ClusterNode) -> bool:
        with contextlib.suppress(redis.RedisError):
            info = _command(node.client(), "CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            return "cluster_state:ok" in text
        return False

    def _replicas_linked(self) -> bool:
        linked = 0
        for node in self.running():
            with contextlib.suppress(redis.RedisError):
                info = node.client().info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") == "up":
                    linked += 1
        return linked >= self.primary_count * self.replicas_per_primary

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Every slot served, every running node agreeing, every replica linked."""
        self._wait(
            lambda: (
                all(self._state_ok(node) for node in self.running()) and self._replicas_linked()
            ),
            timeout_s,
        )

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.server.pid is not None]

    def primaries(self) -> list[ClusterNode]:
        """The running nodes that are primaries now (failovers change which)."""
        found = []
        for node in self.running():
            with contextlib.suppress(redis.RedisError):
                if node.client().info("replication").get("role") == "master":
                    found.append(node)
        return found

    def primary_of(self, key: str) -> ClusterNode:
        """The running primary that serves ``key``'s slot now (as that primary says)."""
        slot = int(_command(self.running()[0].client(), "CLUSTER", "KEYSLOT", key))
        for node in self.primaries():
            for first, last, owner, *_ in _command(node.client(), "CLUSTER", "SLOTS"):
                if int(first) <= slot <= int(last) and int(owner[1]) == node.port:
                    return node
        raise LookupError(f"no running primary serves {key!r}")

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL one node, as a crashed machine would."""
        node.server.kill()

    def restart(self, node: ClusterNode, timeout_s: float = 30.0) -> None:
        """Start a stopped node again on its port (it rejoins, as a replica if it was
        failed over)."""
        node.server.start(timeout_s)

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()

    def __enter__(self) -> "EmbeddedCluster":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _command(client: "redis.Redis", *args: object) -> Any:
    """A raw command (CLUSTER subcommands are sent as they are)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]
