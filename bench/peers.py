"""Dyna-Cache's in-process lookup against RedisVL's ``SemanticCache.check``, in one run:
same Redis, same model (all-MiniLM-L6-v2 from the same package), same 2,000 queries, the
same threshold (squared L2 0.35 = cosine distance 0.175).

Each cache stores the q1 of 2,000 QQP pairs; then each q2 is looked up, one at a time.
Dyna-Cache runs its query path in process (``QueryPath.answer``, cache mode ``only``: the
HTTP layer left out, as RedisVL has none); RedisVL runs as a user would (its
HFTextVectorizer on torch), and once more with Dyna-Cache's ONNX embedder plugged in, so
the search path alone can be compared. Writes bench/results/peers.json.

    python bench/peers.py [--queries 2000]      (needs `pip install -e '.[bench]'`)
"""

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_results
from index.embedding.embedder import load_embedder, packaged_model_path
from index.training.corpus import qqp_pairs
from service.app import start_runtime
from service.embedded_redis import EmbeddedRedis
from service.schemas import EntryIn, QueryRequest
from service.settings import Settings

THRESHOLD_L2 = 0.35
THRESHOLD_COSINE_DISTANCE = THRESHOLD_L2 / 2


def summary(timings: list[float], hits: int) -> dict[str, Any]:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "hits": hits,
    }


async def dyna_cache(redis_url: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    settings = Settings(redis_url=redis_url, threshold=THRESHOLD_L2, replica_id="peers")
    async with contextlib.AsyncExitStack() as stack:
        runtime = await start_runtime(settings, redis_url, stack)
        while not runtime.sync.ready:
            await asyncio.sleep(0.01)
        for start in range(0, len(pairs), 500):
            await runtime.entries.store_many(
                [
                    EntryIn(prompt=q1, response=f"r{start + i}")
                    for i, (q1, _) in enumerate(pairs[start : start + 500])
                ],
                "default",
            )
        timings, hits = [], 0
        for _, q2 in pairs:
            started = time.perf_counter()
            answer = await runtime.queries.answer(QueryRequest(prompt=q2, cache="only"), "default")
            timings.append((time.perf_counter() - started) * 1000)
            hits += answer.status == "HIT"
        return summary(timings, hits)


def redisvl(
    redis_url: str, pairs: list[tuple[str, str]], vectorizer: Any, name: str
) -> dict[str, Any]:
    from redisvl.extensions.cache.llm import SemanticCache

    cache = SemanticCache(
        name=name,
        redis_url=redis_url,
        vectorizer=vectorizer,
        distance_threshold=THRESHOLD_COSINE_DISTANCE,
        overwrite=True,
    )
    for i, (q1, _) in enumerate(pairs):
        cache.store(prompt=q1, response=f"r{i}")
    timings, hits = [], 0
    for _, q2 in pairs:
        started = time.perf_counter()
        found = cache.check(prompt=q2, num_results=1)
        timings.append((time.perf_counter() - started) * 1000)
        hits += bool(found)
    return summary(timings, hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    from redisvl.utils.vectorize import CustomTextVectorizer, HFTextVectorizer

    pairs = qqp_pairs(args.queries, seed=31)
    onnx = load_embedder("onnx", None, None, "models/onnx")
    results: dict[str, Any] = {"queries": len(pairs), "threshold_squared_l2": THRESHOLD_L2}
    with tempfile.TemporaryDirectory(prefix="dc-bench-peers-") as folder:
        redis = EmbeddedRedis(Path(folder), appendonly=False).start()
        try:
            results["dyna_cache_in_process"] = asyncio.run(dyna_cache(redis.url, pairs))
            results["redisvl_hf_vectorizer"] = redisvl(
                redis.url, pairs, HFTextVectorizer(model=str(packaged_model_path())), "rvl_hf"
            )
            results["redisvl_with_onnx_embedder"] = redisvl(
                redis.url,
                pairs,
                CustomTextVectorizer(embed=lambda text: onnx.encode([text])[0].tolist()),
                "rvl_onnx",
            )
        finally:
            redis.stop()
    ours = results["dyna_cache_in_process"]["p50_ms"]
    results["speedup_p50_vs_redisvl"] = round(results["redisvl_hf_vectorizer"]["p50_ms"] / ours, 2)
    results["speedup_p50_vs_redisvl_same_embedder"] = round(
        results["redisvl_with_onnx_embedder"]["p50_ms"] / ours, 2
    )
    for name in ("dyna_cache_in_process", "redisvl_hf_vectorizer", "redisvl_with_onnx_embedder"):
        f = results[name]
        print(f"{name:>28}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, hits {f['hits']}")
    print(
        f"speedup p50: {results['speedup_p50_vs_redisvl']}x vs RedisVL as shipped, "
        f"{results['speedup_p50_vs_redisvl_same_embedder']}x with the same embedder"
    )
    write_results("peers", results)


if __name__ == "__main__":
    main()
