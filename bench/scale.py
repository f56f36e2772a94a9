"""Scale: semantic-HIT latency and replica memory as the index grows, and start-up rebuild.

* 10k and 100k entries: Redis holds that many entries (random unit vectors in the queries'
  scope) plus 200 real QQP questions; a replica is started (its rebuild time and the time
  to /readyz are recorded), then 200 semantic HITs over HTTP give p50/p99, and the
  replica's resident memory (VmRSS) is read.
* 1M entries: the index part alone, in this process (synthetic vectors): build time, search
  p50 and the memory it adds. No Redis or HTTP at that size: Redis would need ~4 GB more.

Writes bench/results/scale.json.   python bench/scale.py [--sizes 10000,100000] [--million]
"""

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ServiceProcess,
    distinct_questions,
    fill_redis,
    percentiles,
    random_unit_vectors,
    write_results,
)
from index.store.keys import new_entry_id
from index.vectors.local_index import IndexedVector, LocalIndex
from service.embedded_redis import EmbeddedRedis
from service.keying.normalise import scope_of


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def with_redis(size: int) -> dict[str, Any]:
    questions = distinct_questions(200, seed=13)
    with tempfile.TemporaryDirectory(prefix="dc-bench-scale-") as folder:
        redis = EmbeddedRedis(Path(folder), appendonly=False).start()
        try:
            asyncio.run(fill_redis(redis.url, size, scope=scope_of(None)))
            with ServiceProcess(redis.url, log_level="warning") as seeder:
                seeder.store(
                    [{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(questions)]
                )
            replica = ServiceProcess(redis.url, log_level="warning")
            try:
                to_ready = replica.wait_ready(timeout_s=900)
                view = replica.view()
                samples = []
                replica.query(questions[0].replace("?", " ?"), cache="only")
                for question in questions:
                    started = time.perf_counter()
                    answer = replica.query(
                        question.replace("?", " ?") if "?" in question else question + " ?",
                        cache="only",
                    ).json()
                    if answer["status"] == "HIT":
                        samples.append((time.perf_counter() - started) * 1000)
                memory = rss_mb(replica.process.pid)
            finally:
                replica.stop()
        finally:
            redis.stop()
    return {
        "entries": size + len(questions),
        "semantic_hit": percentiles(samples),
        "replica_rss_mb": memory,
        "rebuild_seconds": view["last_rebuild"]["seconds"],
        "process_start_to_ready_seconds": round(to_ready, 2),
        "index": view["index"],
    }


def index_only(size: int) -> dict[str, Any]:
    rng = np.random.default_rng(17)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index = LocalIndex(384, maintain_inline=True)
    import faiss

    faiss.omp_set_num_threads(2)  # as a replica's rebuild does
    started = time.perf_counter()
    kept = None
    for offset in range(0, size, 50_000):
        vectors = random_unit_vectors(min(50_000, size - offset), rng)
        if kept is None:
            kept = vectors[:500].copy()
        index.add_many(
            IndexedVector("default", "s", new_entry_id(), v, offset + j)
            for j, v in enumerate(vectors)
        )
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    assert kept is not None
    queries = kept + 0.02 * rng.standard_normal(kept.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    timings = []
    for query in queries:
        started = time.perf_counter()
        index.search("default", "s", query, 4)
        timings.append((time.perf_counter() - started) * 1000)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "entries": size,
        "build_seconds": round(build_s, 1),
        "search_p50_ms": round(statistics.median(timings), 3),
        "search_p99_ms": round(sorted(timings)[int(0.99 * len(timings))], 3),
        "memory_added_mb": round(after - before, 1),
        "index": index.describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--million", action="store_true", help="also the 1M index-only run")
    args = parser.parse_args()
    results: dict[str, Any] = {"with_redis": [], "index_only": []}
    for size in (int(s) for s in args.sizes.split(",") if s):
        figures = with_redis(size)
        results["with_redis"].append(figures)
        print(
            f"{figures['entries']:>7} entries: semantic HIT p50 "
            f"{figures['semantic_hit']['p50_ms']} ms p99 {figures['semantic_hit']['p99_ms']} "
            f"ms, RSS {figures['replica_rss_mb']} MB, rebuild {figures['rebuild_seconds']} s, "
            f"ready after {figures['process_start_to_ready_seconds']} s"
        )
    if args.million:
        figures = index_only(1_000_000)
        results["index_only"].append(figures)
        print(
            f"1M index only: build {figures['build_seconds']} s, search p50 "
            f"{figures['search_p50_ms']} ms, +{figures['memory_added_mb']} MB"
        )
    write_results("scale", results)


if __name__ == "__main__":
    main()
