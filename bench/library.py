"""The library (``dyna_cache.SemanticCache``) in process, against the peers' libraries with
the same embedder, against itself over HTTP, and what an in-process cache costs to start.

1. Lookups, one sitting: each cache stores the q1 of the same QQP pairs, then looks up each
   q2, one at a time, at the same threshold (squared L2 0.35 = cosine distance 0.175) and
   with Dyna-Cache's ONNX embedder everywhere (RedisVL through its ``CustomTextVectorizer``,
   GPTCache through its embedding callback; FAISS and SQLite): ``SemanticCache.check`` with
   the static threshold (the peers have no judge), RedisVL's ``SemanticCache.check`` and
   GPTCache's ``get``; in ``--rounds`` alternating rounds (this machine's speed drifts),
   medians over the rounds. Once more with the library's default decision stage (the
   trained pair model), for reference.
2. The HTTP hop: the same lookups against a replica process over one keep-alive connection.
3. Start-up and memory: a fresh process opens a ``SyncSemanticCache`` on a Redis holding
   ``--entries`` entries (real QQP questions): seconds to ``start()`` (lookups served, from
   Redis's KNN), to ``ready`` (the local index loaded), and the process's resident memory.

Writes bench/results/library.json.

    python bench/library.py [--queries 2000] [--rounds 2] [--entries 10000]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fill_redis, write_results
from bench.peers import THRESHOLD_L2, dyna_cache, dyna_cache_http, gptcache, redisvl
from index.embedding.embedder import load_embedder
from service.embedded_redis import EmbeddedRedis
from service.keying.normalise import scope_of
from training.corpus import qqp_pairs

ROOT = Path(__file__).resolve().parents[1]

START_UP = """
import json, sys, time
started = time.perf_counter()
from dyna_cache import SyncSemanticCache
imported = time.perf_counter()
cache = SyncSemanticCache(redis_url=sys.argv[1], index_snapshots=False).start()
opened = time.perf_counter()
first = cache.check("How do I learn to play the guitar?")
answered = time.perf_counter()
cache.wait_ready(120)
ready = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({
    "import_s": round(imported - started, 3),
    "start_s": round(opened - imported, 3),
    "first_lookup_ms": round((answered - opened) * 1000, 2),
    "ready_s": round(ready - imported, 3),
    "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
    "peak_rss_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1),
    "decision": cache.cache._running().queries.decision.stage.name,
}))
cache.close()
"""


def start_up(redis_url: str) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DYNACACHE_LOG_LEVEL": "warning"}
    finished = subprocess.run(
        [sys.executable, "-c", START_UP, redis_url], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600, check=True,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    from redisvl.utils.vectorize import CustomTextVectorizer

    pairs = qqp_pairs(args.queries, seed=31)
    onnx = load_embedder("onnx", None, None, "models/onnx")
    vectorizer = CustomTextVectorizer(embed=lambda text: onnx.encode([text])[0].tolist())
    rounds: dict[str, list[dict[str, Any]]] = {}
    results: dict[str, Any] = {"queries": len(pairs), "threshold_squared_l2": THRESHOLD_L2}
    with tempfile.TemporaryDirectory(prefix="dc-bench-library-") as folder:
        redis = EmbeddedRedis(Path(folder), appendonly=False).start()
        try:
            for round_number in range(args.rounds):
                measured = {
                    "dyna_cache_library": asyncio.run(dyna_cache(redis.url, pairs)),
                    "redisvl_onnx": redisvl(redis.url, pairs, vectorizer, f"rvl{round_number}"),
                    "gptcache_onnx": gptcache(pairs, lambda text: onnx.encode([text])[0]),
                    "dyna_cache_http": dyna_cache_http(redis.url, pairs),
                }
                for name, figures in measured.items():
                    rounds.setdefault(name, []).append(figures)
                    print(f"round {round_number + 1} {name:>20}: p50 {figures['p50_ms']} ms, "
                          f"p99 {figures['p99_ms']} ms, hits {figures['hits']}")  # fmt: skip
            default_stage = asyncio.run(dyna_cache(redis.url, pairs, pair_model="auto"))
            print(f"library, default decision: {default_stage}")
        finally:
            redis.stop()
        with tempfile.TemporaryDirectory(prefix="dc-bench-library-start-") as start_folder:
            redis = EmbeddedRedis(Path(start_folder), appendonly=False).start()
            try:
                asyncio.run(fill_redis(redis.url, args.entries, scope=scope_of(None), filler="qqp"))
                results["start_up"] = {"entries": args.entries, **start_up(redis.url)}
            finally:
                redis.stop()
    print(f"start-up over {args.entries} entries: {results['start_up']}")

    def median_p50(name: str) -> float:
        return round(float(statistics.median(r["p50_ms"] for r in rounds[name])), 3)

    results["lookups"] = {
        name: {"p50_ms": median_p50(name), "hits": runs[-1]["hits"], "rounds": runs}
        for name, runs in rounds.items()
    }
    results["library_default_decision"] = default_stage
    library = median_p50("dyna_cache_library")
    results["library_speedup_p50"] = {
        peer: round(median_p50(peer) / library, 2) for peer in ("redisvl_onnx", "gptcache_onnx")
    }
    results["http_hop_p50_ms"] = round(median_p50("dyna_cache_http") - library, 3)
    print(f"library speedup p50: {results['library_speedup_p50']}; "
          f"HTTP hop {results['http_hop_p50_ms']} ms")  # fmt: skip
    write_results("library", {"parameters": vars(args), **results})


if __name__ == "__main__":
    main()
