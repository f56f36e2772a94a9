"""Dyna-Cache on one Redis vs a Redis Cluster of 3 primaries (a replica each), same machine,
same run.

* Writes/s: entries (random unit vectors) written through the store's own write script,
  32 in flight from one process, spread over 24 namespaces (every shard gets some).
* Semantic HITs/s: one replica, 1,000 QQP questions stored, wrk at 16 clients asking each
  with " ?" for "?" (``cache: only``: every request embeds, searches, confirms in Redis).
* Rebuild: Redis filled with 100k entries, a replica started; its rebuild time.
* Failover gap: a replica asking one stored question 50 times a second (``cache: only``);
  the primary holding its namespace is killed (SIGKILL; cluster-node-timeout 1 s); the gap
  is from the last HIT before the kill to the first HIT after it, every answer in between
  being a MISS passed through (status 200) or not.

On this 2-core machine three primaries share the cores one Redis had: the cluster buys
memory and failure isolation here, not CPU. Writes bench/results/cluster.json.
    python bench/cluster.py [--entries 100000] [--seconds 10]
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import distinct_questions, random_unit_vectors, write_results
from bench.throughput import run_wrk, semantic_lookup_inputs
from devtools.redis_cluster import EmbeddedCluster
from devtools.replica_process import ServiceProcess
from index.store import keys
from service.embedded_redis import EmbeddedRedis

NAMESPACES = [f"bench-{i}" for i in range(24)]
COMMON: dict[str, Any] = {"sim_latency_ms": 0, "log_level": "error"}


@contextmanager
def redis_of(kind: str, folder: Path) -> Iterator[tuple[str, Any]]:
    """``(url, server)`` of one Redis or of a 3-primary cluster, stopped on exit."""
    server: EmbeddedRedis | EmbeddedCluster
    if kind == "single":
        server = EmbeddedRedis(folder / kind).start()
    else:
        server = EmbeddedCluster(folder / kind, primaries=3, node_timeout_ms=1000).start()
    try:
        yield server.url, server
    finally:
        server.stop()


async def write_entries(url: str, count: int, namespaces: list[str]) -> float:
    """Entries per second written through the store (32 in flight, round-robin over
    ``namespaces``)."""
    from index.embedding.protocol import EMBEDDING_DIM
    from index.store.connection import connect
    from index.store.records import NewEntry, Retention
    from index.store.redis_store import RedisStore

    client = connect(url, 30)
    store = RedisStore(client, origin="bench-cluster", dim=EMBEDDING_DIM)
    await store.search.ensure_search_index()
    rng = np.random.default_rng(5)
    in_flight = asyncio.Semaphore(32)

    async def write(position: int, vector: np.ndarray) -> None:
        async with in_flight:
            await store.write(
                NewEntry(
                    ns=namespaces[position % len(namespaces)], scope="bench", model="",
                    prompt=f"filler {position}", normalised_prompt=f"filler {position}",
                    response="filler", vector=vector, llm_ms=0, cost=0, retention=Retention(ttl=0),
                )
            )  # fmt: skip

    started = time.perf_counter()
    for offset in range(0, count, 2000):
        vectors = random_unit_vectors(min(2000, count - offset), rng)
        await asyncio.gather(*(write(offset + j, v) for j, v in enumerate(vectors)))
    elapsed = time.perf_counter() - started
    await store.aclose()
    await client.aclose()
    return count / elapsed


def semantic_hits_per_s(url: str, folder: Path, seconds: int) -> dict[str, float]:
    questions = distinct_questions(1000, seed=8)
    script, bodies = semantic_lookup_inputs(folder, questions)
    with ServiceProcess(url, replica_id="cluster-tp", **COMMON) as service:
        service.store([{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(questions)])
        figures = run_wrk(service.url, 16, seconds, script, bodies)
        stats = service.http.get("/v1/stats").json()
    figures["hit_fraction"] = round(stats["hits"] / max(stats["requests"], 1), 4)
    return figures


def rebuild_seconds(url: str, entries: int) -> dict[str, float]:
    fill_rate = asyncio.run(write_entries(url, entries, NAMESPACES))
    replica = ServiceProcess(url, replica_id="cluster-rebuild", **COMMON)
    try:
        to_ready = replica.wait_ready(timeout_s=900)
        rebuild = replica.view()["last_rebuild"]
    finally:
        replica.stop()
    assert rebuild["entries"] >= entries, rebuild
    return {
        "entries": entries,
        "fill_writes_per_s": round(fill_rate),
        "rebuild_seconds": rebuild["seconds"],
        "process_start_to_ready_seconds": round(to_ready, 2),
    }


def failover_gap(cluster: EmbeddedCluster) -> dict[str, Any]:
    with ServiceProcess(cluster.url, replica_id="cluster-failover", **COMMON) as replica:
        prompt = "What is the boiling point of water at sea level?"
        replica.query(prompt).raise_for_status()
        for _ in range(50):  # warm: every answer a HIT
            assert replica.query(prompt, cache="only").json()["status"] == "HIT"
        victim = cluster.primary_of(keys.sequence_key("default"))
        cluster.kill(victim)
        killed_at = time.monotonic()
        answers: Counter[str] = Counter()
        back_at = None
        while time.monotonic() - killed_at < 60:
            started = time.monotonic()
            answer = replica.query(prompt, cache="only")
            status = f"{answer.json().get('status', 'error')} ({answer.status_code})"
            answers[status] += 1
            if status == "HIT (200)":
                back_at = started
                break
            time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))
        cluster.restart(victim)
        cluster.wait_healthy(60)
    return {
        "node_timeout_ms": cluster.node_timeout_ms,
        "answers_until_hits_again": dict(answers),
        "kill_to_first_hit_seconds": None if back_at is None else round(back_at - killed_at, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    results: dict[str, Any] = {"machine_cores": 2, "setups": {}}
    with tempfile.TemporaryDirectory(prefix="dc-bench-cluster-") as folder:
        for kind in ("single", "cluster"):
            setup: dict[str, Any] = {"primaries": 1 if kind == "single" else 3}
            with redis_of(kind, Path(folder)) as (url, _):
                setup["writes_per_s"] = round(
                    asyncio.run(write_entries(url, args.writes, NAMESPACES))
                )
                print(f"{kind}: {setup['writes_per_s']} writes/s", flush=True)
                setup["semantic_hits_16_clients"] = semantic_hits_per_s(
                    url, Path(folder), args.seconds
                )
                print(f"{kind}: {setup['semantic_hits_16_clients']}", flush=True)
            with redis_of(kind, Path(folder) / "rebuild") as (url, _):
                setup["rebuild"] = rebuild_seconds(url, args.entries)
                print(f"{kind}: rebuild {setup['rebuild']}", flush=True)
            results["setups"][kind] = setup
        with redis_of("cluster", Path(folder) / "failover") as (_, cluster):
            results["failover"] = failover_gap(cluster)
            print(f"failover: {results['failover']}", flush=True)
    single, sharded = results["setups"]["single"], results["setups"]["cluster"]
    results["ratios_cluster_over_single"] = {
        "writes_per_s": round(sharded["writes_per_s"] / single["writes_per_s"], 2),
        "semantic_hits_per_s": round(
            sharded["semantic_hits_16_clients"]["requests_per_s"]
            / single["semantic_hits_16_clients"]["requests_per_s"],
            2,
        ),
        "rebuild_seconds": round(
            sharded["rebuild"]["rebuild_seconds"] / single["rebuild"]["rebuild_seconds"], 2
        ),
    }
    print(results["ratios_cluster_over_single"])
    results["decision_stage"] = "static threshold (Redis topology, not decisions, is measured)"
    write_results("cluster", results)


if __name__ == "__main__":
    main()
