"""Dyna-Cache on a real Redis Cluster on 127.0.0.1: 3 primaries with a replica each, the
project's own redis-server + RediSearch, replicas as real processes. (The whole suite runs
on a cluster too: ``make test-cluster``.) Every wait is on a condition with a deadline."""

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devtools.redis_cluster import EmbeddedCluster
from devtools.replica_process import ServiceProcess
from index.store import keys
from tests.helpers import wait_until
from tests.test_tenants import ADMIN, ask, make_tenant

COMMON = {"sim_latency_ms": 0, "embed_threads": 1, "drift_check_interval_s": 60}


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    # appendfsync always: a primary killed after acknowledging has the write on disk too
    with (
        tempfile.TemporaryDirectory(prefix="dc-cluster-") as data_dir,
        EmbeddedCluster(Path(data_dir), node_timeout_ms=1000, appendfsync="always") as made,
    ):
        yield made


@pytest.fixture
def client(cluster: EmbeddedCluster) -> Iterator[redis.RedisCluster]:
    made = redis.RedisCluster(host="127.0.0.1", port=cluster.running()[0].port)
    made.flushall()
    yield made
    made.close()


def held(replica: ServiceProcess) -> set[str]:
    """The entry ids in a replica's local index."""
    view = replica.http.get(
        "/v1/replica", params={"ids": True}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    return set(view.json()["entry_ids"])


def test_namespaces_spread_over_shards_and_replicas_follow_each_shards_events(
    cluster: EmbeddedCluster, client: redis.RedisCluster
) -> None:
    namespaces = [f"tenant-{i}" for i in range(12)]
    shards = {cluster.primary_of(keys.sequence_key(ns)).port for ns in namespaces}
    assert len(shards) == 3  # the twelve namespaces land on every primary
    first = ServiceProcess(cluster.url, replica_id="A", admin_token=ADMIN, **COMMON)
    second = ServiceProcess(cluster.url, replica_id="B", admin_token=ADMIN, **COMMON)
    try:
        first.wait_ready()
        second.wait_ready()
        key = {ns: make_tenant(first, ns) for ns in namespaces}
        stored = {}
        for ns in namespaces:
            answer = ask(first, key[ns], f"What is the refund policy of {ns}?").json()
            assert answer["status"] == "MISS", answer
            stored[ns] = answer["entry_id"]
        # every namespace's write, on its own shard, reached the other replica by its event
        # (sharded pub/sub on the shard's primary): a paraphrase HITs there
        for ns in namespaces:
            wait_until(
                lambda n=ns: (
                    ask(second, key[n], f"What's the refund policy of {n}?", cache="only")
                    .json()["status"] == "HIT"
                ),
                10,
                message=f"{ns} served by the other replica",
            )  # fmt: skip
        # a delete through one replica leaves the other's index (its shard's 'del' event)
        victim = namespaces[5]
        deleted = second.http.delete(
            f"/v1/entries/{stored[victim]}", headers={"Authorization": f"Bearer {key[victim]}"}
        )
        assert deleted.status_code == 200, deleted.text
        wait_until(
            lambda: stored[victim] not in held(first),
            10,
            message="the delete applied on the other replica",
        )
        # an expiry on any primary reaches both (keyspace events are per node)
        short = ask(first, key[namespaces[7]], "What is the capital of Peru?", ttl=4).json()
        assert short["status"] == "MISS", short
        for replica in (first, second):
            wait_until(
                lambda r=replica: short["entry_id"] in held(r),
                3,
                message="the short-lived entry held",
            )
        for replica in (first, second):
            wait_until(
                lambda r=replica: short["entry_id"] not in held(r),
                15,
                message="the expiry applied",
            )
        # a replica started now rebuilds every shard's entries
        third = ServiceProcess(cluster.url, replica_id="C", admin_token=ADMIN, **COMMON)
        try:
            third.wait_ready()
            assert held(third) == set(stored.values()) - {stored[victim]}
        finally:
            third.stop()
    finally:
        first.stop()
        second.stop()


def test_a_killed_primary_fails_over_under_traffic_and_no_acknowledged_entry_is_lost(
    cluster: EmbeddedCluster, client: redis.RedisCluster
) -> None:
    # writes count as stored once the shard's replica has them (WAIT 1)
    replica = ServiceProcess(cluster.url, replica_id="F", redis_wait_replicas=1, **COMMON)
    acknowledged: dict[str, str] = {}  # prompt -> entry id, for 201s only
    writes: list[int] = []  # statuses
    queries: list[int] = []
    stop = threading.Event()
    numbers = iter(range(1_000_000))

    def write_and_ask() -> None:
        with httpx.Client(base_url=replica.url, timeout=30) as http:
            while not stop.is_set():
                number = next(numbers)
                prompt = f"What is the part number of widget {number}?"
                stored = http.post(
                    "/v1/entries", json={"entries": [{"prompt": prompt, "response": str(number)}]}
                )
                writes.append(stored.status_code)
                if stored.status_code == 201:
                    acknowledged[prompt] = stored.json()["entries"][0]["entry_id"]
                asked = http.post("/v1/query", json={"prompt": prompt})
                queries.append(asked.status_code)

    def traffic_until(condition: Callable[[], bool], message: str) -> None:
        stop.clear()
        traffic = threading.Thread(target=write_and_ask)
        traffic.start()
        try:
            wait_until(condition, 60, message=message)
        finally:
            stop.set()
            traffic.join(60)

    def promoted() -> bool:
        try:
            return cluster.primary_of(keys.sequence_key("default")).port != victim.port
        except LookupError:  # no primary for the slot yet
            return False

    def served_from_cache() -> bool:
        prompt = next(iter(acknowledged))
        return bool(replica.query(prompt, cache="only").json()["status"] == "HIT")

    try:
        replica.wait_ready()
        victim = cluster.primary_of(keys.sequence_key("default"))
        traffic_until(lambda: len(acknowledged) >= 20, "writes acknowledged")
        stop.clear()
        traffic = threading.Thread(target=write_and_ask)
        traffic.start()
        cluster.kill(victim)
        wait_until(promoted, 30, message="a replica promoted")
        stop.set()
        traffic.join(60)
        # lookups alone (no write to stir the client) are HITs again, nothing restarted
        wait_until(served_from_cache, 20, message="HITs again after the failover")
        # the promoted primary has no replica of its own: writes wait for one and are not
        # acknowledged; the old primary comes back as the new one's replica
        cluster.restart(victim)
        cluster.wait_healthy(60)
        count = len(acknowledged)
        traffic_until(lambda: len(acknowledged) >= count + 20, "writes acknowledged again")
        # queries were answered all along (passed through while the slot had no primary); a
        # write the shard could not confirm (no primary, or no replica to WAIT for) is a 503
        # with a reason, never a hang or a crash
        assert set(queries) == {200}
        assert set(writes) == {201, 503}
        # every acknowledged entry is still there and served
        wait_until(
            lambda: replica.http.get("/readyz").status_code == 200, 30, message="ready again"
        )
        for prompt, entry_id in acknowledged.items():
            answer = replica.query(prompt, cache="only").json()
            assert answer["status"] == "HIT", (prompt, answer)
            assert answer["entry_id"] == entry_id
    finally:
        stop.set()
        replica.stop()


def test_a_dead_primary_passes_through_its_own_namespaces_only(
    cluster: EmbeddedCluster, client: redis.RedisCluster
) -> None:
    replica = ServiceProcess(cluster.url, replica_id="G", admin_token=ADMIN, **COMMON)
    try:
        replica.wait_ready()
        names = (f"tenant-{i}" for i in range(1000))
        doomed = next(names)
        victim = cluster.primary_of(keys.sequence_key(doomed))
        spared = next(n for n in names if cluster.primary_of(keys.sequence_key(n)) != victim)
        key = {ns: make_tenant(replica, ns) for ns in (doomed, spared)}
        prompt = "What is the boiling point of water at sea level?"
        for ns in (doomed, spared):
            assert ask(replica, key[ns], prompt).json()["status"] == "MISS"
            assert ask(replica, key[ns], prompt, cache="only").json()["status"] == "HIT"
        cluster.kill(victim)
        statuses: dict[str, list[str]] = {doomed: [], spared: []}
        for _ in range(40):  # alternately: the dead shard's namespace, then the other's
            for ns in (doomed, spared):
                answer = ask(replica, key[ns], prompt, cache="only")
                assert answer.status_code == 200, answer.text
                statuses[ns].append(answer.json()["status"])
        assert "MISS" in statuses[doomed]  # its shard had no primary for a while
        assert set(statuses[spared]) == {"HIT"}  # the other shard served throughout
        wait_until(
            lambda: ask(replica, key[doomed], prompt, cache="only").json()["status"] == "HIT",
            20,
            message="the failed-over shard's namespace served again",
        )
    finally:
        replica.stop()
        for node in cluster.nodes:
            if node.server.pid is None:
                cluster.restart(node)
        cluster.wait_healthy(60)
