"""What ``appendfsync always`` costs a write, against the default ``everysec``.

For each policy: an embedded Redis Stack (AOF on) in a fresh folder, and the store's own
write script (``RedisStore.write``: hash, pointer, LRU/LFU, event, RediSearch indexing)
writing ``--entries`` entries with random vectors, first one at a time (the latency of one
acknowledged write), then 32 in flight (throughput). Both policies in one sitting, one
after the other, alternating twice. Writes bench/results/appendfsync.json.

    python bench/appendfsync.py [--entries 1000]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentiles, random_unit_vectors, write_results
from index.embedding.protocol import EMBEDDING_DIM
from index.store.connection import connect
from index.store.records import NewEntry, Retention
from index.store.redis_store import RedisStore
from service.embedded_redis import EmbeddedRedis

POLICIES = ("everysec", "always")


def entry(position: int, vector: np.ndarray) -> NewEntry:
    prompt = f"durability question {position}"
    return NewEntry(ns="default", scope="bench", model="", prompt=prompt,
                    normalised_prompt=prompt, response="an answer " * 20, vector=vector,
                    llm_ms=0, cost=0, retention=Retention(ttl=0))  # fmt: skip


async def measure(policy: str, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dc-fsync-") as folder:
        server = EmbeddedRedis(Path(folder), appendonly=True, appendfsync=policy).start()
        client = connect(server.url, 10)
        try:
            store = RedisStore(client, origin="bench", dim=EMBEDDING_DIM)
            await store.search.ensure_search_index()
            vectors = random_unit_vectors(2 * count, np.random.default_rng(3))
            one_at_a_time = []
            for i in range(count):
                started = time.perf_counter()
                await store.write(entry(i, vectors[i]))
                one_at_a_time.append((time.perf_counter() - started) * 1000)
            in_flight = asyncio.Semaphore(32)

            async def write(i: int) -> None:
                async with in_flight:
                    await store.write(entry(i, vectors[i]))

            started = time.perf_counter()
            await asyncio.gather(*(write(i) for i in range(count, 2 * count)))
            concurrent_s = time.perf_counter() - started
        finally:
            await client.aclose()
            server.stop()
    return {"one_at_a_time_ms": percentiles(one_at_a_time),
            "writes_per_s_32_in_flight": round(count / concurrent_s, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {policy: [] for policy in POLICIES}
    for _ in range(2):
        for policy in POLICIES:
            runs[policy].append(asyncio.run(measure(policy, args.entries)))
            print(policy, runs[policy][-1], flush=True)
    summary = {
        policy: {
            "write_p50_ms": statistics.median(r["one_at_a_time_ms"]["p50_ms"] for r in rs),
            "write_p99_ms": statistics.median(r["one_at_a_time_ms"]["p99_ms"] for r in rs),
            "writes_per_s_32_in_flight": statistics.median(
                r["writes_per_s_32_in_flight"] for r in rs
            ),
        }
        for policy, rs in runs.items()
    }
    results = {"entries": args.entries, "summary": summary, "runs": runs}
    write_results("appendfsync", results)
    print(summary)


if __name__ == "__main__":
    main()
