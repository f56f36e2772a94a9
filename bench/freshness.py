"""Hit rate of TTL and eviction policies under a Zipf-distributed query stream.

A pool of distinct QQP questions is ranked; each request asks the question of rank k with
probability ∝ 1 / k^skew (seeded). Each (TTL policy, eviction) pair gets a fresh replica
with the same capacity and base TTL, and the same stream, sent as fast as it answers
(simulated LLM at 0 ms). Writes bench/results/freshness.json.

    python bench/freshness.py [--requests 4000] [--pool 2000] [--capacity 200] [--ttl 3]
                              [--skew 1.1]
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, distinct_questions, write_results


def zipf_stream(pool: int, requests: int, skew: float, seed: int = 5) -> list[int]:
    weights = 1.0 / np.arange(1, pool + 1) ** skew
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.choice(pool, size=requests, p=weights / weights.sum())]


def run(questions: list[str], stream: list[int], env: dict[str, Any]) -> dict[str, Any]:
    hits = misses = 0
    started = time.perf_counter()
    with ServiceProcess(sim_latency_ms=0, log_level="error", **env) as service:
        for rank in stream:
            status = service.query(questions[rank]).json()["status"]
            hits += status == "HIT"
            misses += status == "MISS"
        stats = service.http.get("/v1/stats").json()
    evictions = stats["namespaces"].get("default", {}).get("evictions", 0)
    return {
        "hit_rate": round(hits / (hits + misses), 4),
        "hits": hits,
        "misses": misses,
        "evictions": evictions,
        "entries_at_end": stats["entries"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--capacity", type=int, default=200)
    parser.add_argument("--ttl", type=int, default=3, help="base TTL, seconds")
    parser.add_argument("--skew", type=float, default=1.1)
    args = parser.parse_args()
    questions = distinct_questions(args.pool, seed=17)
    stream = zipf_stream(args.pool, args.requests, args.skew)
    results: dict[str, Any] = {"parameters": vars(args), "runs": []}
    for eviction in ("lru", "lfu"):
        for policy in ("fixed", "sliding", "adaptive"):
            figures = run(
                questions,
                stream,
                {
                    "ttl_policy": policy,
                    "eviction": eviction,
                    "default_ttl_s": args.ttl,
                    "ttl_max_s": args.ttl * 10,
                    "max_entries_per_namespace": args.capacity,
                },
            )
            results["runs"].append({"ttl_policy": policy, "eviction": eviction, **figures})
            print(
                f"{policy:>8} TTL, {eviction}: hit rate {figures['hit_rate']:.1%} "
                f"({figures['evictions']} evictions, {figures['seconds']} s)"
            )
    write_results("freshness", results)


if __name__ == "__main__":
    main()
