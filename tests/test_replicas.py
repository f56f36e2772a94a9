"""N replicas as real processes on one Redis Stack behave as one cache (DESIGN.md,
"Replica life cycle"). Every wait is on a condition with a deadline."""

import asyncio
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from devtools.nginx_lb import NginxLB, nginx_binary
from devtools.replica_process import ServiceProcess
from index.store import keys
from service.embedded_redis import EmbeddedRedis
from tests.helpers import wait_until

B_USER, B_PASSWORD = "replica-b", "b-secret"


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[EmbeddedRedis]:
    with tempfile.TemporaryDirectory(prefix="dc-replicas-") as data_dir:
        server = EmbeddedRedis(Path(data_dir), appendonly=False).start()
        client = redis.Redis(port=server.port)
        # Replica B logs in as its own user, so a test can lock it out for a while.
        client.acl_setuser(
            B_USER,
            enabled=True,
            passwords=[f"+{B_PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        client.close()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def replicas(shared_redis: EmbeddedRedis) -> Iterator[list[ServiceProcess]]:
    b_url = f"redis://{B_USER}:{B_PASSWORD}@127.0.0.1:{shared_redis.port}/0"
    common = {"sim_latency_ms": 0, "drift_check_interval_s": 60, "embed_threads": 1}
    started = [
        ServiceProcess(shared_redis.url, replica_id="A", **common),
        ServiceProcess(b_url, replica_id="B", **common),
        ServiceProcess(shared_redis.url, replica_id="C", **common),
    ]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


@pytest.fixture
def redis_client(shared_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(port=shared_redis.port)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def empty_cache(replicas: list[ServiceProcess]) -> None:
    replicas[0].http.delete("/v1/namespaces/default").raise_for_status()
    for replica in replicas:
        wait_until(
            lambda r=replica: r.view()["entries"] == 0, 10, message=f"{replica.replica_id} empty"
        )


def hits(replica: ServiceProcess, prompt: str) -> bool:
    return bool(replica.query(prompt, cache="only").json()["status"] == "HIT")


def redis_entry_ids(client: redis.Redis) -> set[str]:
    return {key.decode().rsplit(":", 1)[1] for key in client.scan_iter(match=keys.entry_pattern())}


def test_write_on_a_hits_on_b_and_c(replicas: list[ServiceProcess]) -> None:
    a, b, c = replicas
    assert a.query("What is the capital of France?").json()["status"] == "MISS"
    for other in (b, c):
        wait_until(
            lambda o=other: hits(o, "Tell me the capital of France"),
            5,
            message=f"HIT on {other.replica_id}",
        )
        assert other.view()["entries"] == 1


def test_delete_and_flush_propagate(replicas: list[ServiceProcess]) -> None:
    a, b, c = replicas
    entry_ids = a.store(
        [
            {"prompt": "Who wrote Hamlet?", "response": "Shakespeare."},
            {"prompt": "How tall is Mount Everest?", "response": "8,849 m"},
        ]
    )
    for replica in replicas:
        wait_until(lambda r=replica: r.view()["entries"] == 2, 5, message="both entries everywhere")
    assert b.http.delete(f"/v1/entries/{entry_ids[0]}").status_code == 200
    for replica in (a, c):
        wait_until(
            lambda r=replica: entry_ids[0] not in r.view(ids=True)["entry_ids"],
            5,
            message=f"delete seen by {replica.replica_id}",
        )
        assert not hits(replica, "Who was the author of Hamlet?")
        assert hits(replica, "What is the height of Mount Everest?")
    assert b.http.delete("/v1/namespaces/default").json() == {"deleted": 1}
    for replica in (a, c):
        wait_until(lambda r=replica: r.view()["entries"] == 0, 5, message="flush seen")
        assert not hits(replica, "What is the height of Mount Everest?")


def test_one_second_ttl_expires_everywhere(replicas: list[ServiceProcess]) -> None:
    a = replicas[0]
    stored = a.query("What is the capital of France?", ttl=1).json()
    assert stored["status"] == "MISS" and stored["entry_id"] is not None
    for replica in replicas:
        wait_until(
            lambda r=replica: r.view()["entries"] == 0,
            10,
            message=f"expiry seen by {replica.replica_id}",
        )
        assert not hits(replica, "Tell me the capital of France")


def test_late_replica_hits_as_soon_as_ready(
    shared_redis: EmbeddedRedis, replicas: list[ServiceProcess]
) -> None:
    questions = [
        f"What is the population of city number {i} in region {i % 37}?" for i in range(2000)
    ]
    replicas[0].store([{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(questions)])
    with ServiceProcess(
        shared_redis.url, replica_id="D", sim_latency_ms=0, embed_threads=1
    ) as late:
        assert late.view()["entries"] == 2000
        for i in random.Random(3).sample(range(2000), 25):
            # "?" → " ?" changes the exact key but not the tokens: only FAISS can find it
            answer = late.query(questions[i].replace("?", " ?"), cache="only").json()
            assert answer["status"] == "HIT" and answer["response"] == f"answer {i}"


def test_replica_catches_up_after_losing_its_subscription(
    replicas: list[ServiceProcess], redis_client: redis.Redis
) -> None:
    a, b, _ = replicas
    doomed = a.store([{"prompt": "Which planet is the largest?", "response": "Jupiter."}])[0]
    wait_until(lambda: b.view()["entries"] == 1, 5, message="B has the first entry")
    reconnects = b.view()["reconnects"]
    # Lock B out, then cut its pub/sub connection: it cannot come back until we allow it.
    redis_client.acl_setuser(B_USER, enabled=False)
    killed = redis_client.client_kill_filter(_type="pubsub", user=B_USER)
    assert killed >= 1
    wait_until(lambda: not b.view()["subscribed"], 5, message="B notices the cut")
    written = a.store(
        [{"prompt": f"Meanwhile question {i} about rivers", "response": str(i)} for i in range(20)]
    )
    assert a.http.delete(f"/v1/entries/{doomed}").status_code == 200
    redis_client.acl_setuser(B_USER, enabled=True)
    wait_until(lambda: b.view()["subscribed"], 10, message="B subscribed again")
    wait_until(
        lambda: set(b.view(ids=True)["entry_ids"]) == set(written),
        10,
        message="B caught up, without the entry deleted meanwhile",
    )
    assert b.view()["reconnects"] > reconnects
    assert hits(b, "Meanwhile question 7 about rivers ?")


def test_a_missed_delete_offset_by_an_add_is_caught_up_without_a_rebuild(
    replicas: list[ServiceProcess], redis_client: redis.Redis
) -> None:
    a, b, _ = replicas
    doomed = a.store([{"prompt": "Which ocean is the deepest?", "response": "The Pacific."}])[0]
    wait_until(lambda: b.view()["entries"] == 1, 5, message="B has the entry")
    rebuilds = b.view()["rebuilds"]
    redis_client.acl_setuser(B_USER, enabled=False)
    assert redis_client.client_kill_filter(_type="pubsub", user=B_USER) >= 1
    wait_until(lambda: not b.view()["subscribed"], 5, message="B notices the cut")
    # one delete and one add while B is away: the counts come out equal (1 and 1)
    assert a.http.delete(f"/v1/entries/{doomed}").status_code == 200
    added = a.store([{"prompt": "Which desert is the largest?", "response": "Antarctica."}])
    redis_client.acl_setuser(B_USER, enabled=True)
    wait_until(
        lambda: set(b.view(ids=True)["entry_ids"]) == set(added) == redis_entry_ids(redis_client),
        5, message="B equal to Redis within 5 s of coming back",
    )  # fmt: skip
    assert not hits(b, "Which ocean is the deepest?")
    assert b.view()["rebuilds"] == rebuilds  # caught up by what differs, not rebuilt


def test_concurrent_writes_leave_every_replica_equal_to_redis(
    replicas: list[ServiceProcess], redis_client: redis.Redis
) -> None:
    async def write_all() -> list[int]:
        in_flight = asyncio.Semaphore(100)  # httpx's pool slows down with 1,000 waiting
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def write(i: int) -> int:
                target = replicas[i % 3].url
                # refresh: always a write, even where prompts are near each other
                async with in_flight:
                    response = await client.post(
                        f"{target}/v1/query",
                        json={
                            "prompt": f"Concurrent question {i}: what is {i} times {i + 3}?",
                            "cache": "refresh",
                        },
                    )
                return response.status_code

            return await asyncio.gather(*(write(i) for i in range(1000)))

    statuses = asyncio.run(write_all())
    assert statuses == [200] * 1000
    in_redis = redis_entry_ids(redis_client)
    assert len(in_redis) == 1000
    for replica in replicas:
        wait_until(
            lambda r=replica: set(r.view(ids=True)["entry_ids"]) == in_redis,
            60,  # a condition, not a sleep: generous for a loaded CI machine
            message=f"{replica.replica_id} equal to Redis",
        )


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_paraphrase_hits_through_nginx_whichever_replica_answers(
    replicas: list[ServiceProcess],
) -> None:
    replicas[0].query("What is the capital of France?")
    balancer = NginxLB([replica.port for replica in replicas]).start()
    try:
        with httpx.Client(base_url=balancer.url, timeout=30) as client:

            def answered() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answered, 10, message="nginx up")
            # every replica must have applied the write before any answer is checked
            for replica in replicas:
                wait_until(lambda r=replica: r.view()["entries"] == 1, 5, message="entry applied")
            answered_by = set()
            for _ in range(9):
                response = client.post(
                    "/v1/query", json={"prompt": "Tell me the capital of France"}
                )
                assert response.json()["status"] == "HIT"
                assert response.headers["X-Cache"] == "HIT"
                answered_by.add(response.headers["X-Replica"])
            assert answered_by == {"A", "B", "C"}
    finally:
        balancer.stop()
