"""Dyna-Cache's lookup against RedisVL's ``SemanticCache.check`` and GPTCache's ``get``, in
one run: same Redis, same model (all-MiniLM-L6-v2 from the same package), same 2,000
queries, the same threshold (squared L2 0.35 = cosine distance 0.175), the static decision
(Dyna-Cache's pair model off: the peers have none).

Each cache stores the q1 of 2,000 QQP pairs; then each q2 is looked up, one at a time.
Dyna-Cache is measured as a user sees it, over HTTP (a replica process, ``cache: only``,
one keep-alive connection), and in process (the library, ``dyna_cache.SemanticCache``: no HTTP,
as the peers have none). RedisVL runs as a user would (its HFTextVectorizer on torch), and
once more with Dyna-Cache's ONNX embedder plugged in, so that the rest of the path can be
compared; GPTCache with its SBERT embedding (torch), FAISS and SQLite.
Writes bench/results/peers.json.

    python bench/peers.py [--queries 2000]      (needs `pip install -e '.[bench]'`)
"""

import argparse
import asyncio
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, write_results
from bench.latency import LeanClient
from index.embedding.embedder import load_embedder, packaged_model_path
from service.embedded_redis import EmbeddedRedis
from training.corpus import qqp_pairs

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


def dyna_cache_http(redis_url: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    with ServiceProcess(
        redis_url, threshold=THRESHOLD_L2, sim_latency_ms=0, replica_id="peers-http"
    ) as service:
        service.store([{"prompt": q1, "response": f"r{i}"} for i, (q1, _) in enumerate(pairs)])
        client = LeanClient(service.port)
        timings, hits = [], 0
        for _, q2 in pairs:
            started = time.perf_counter()
            status, answer, _ = client.post("/v1/query", {"prompt": q2, "cache": "only"})
            timings.append((time.perf_counter() - started) * 1000)
            hits += status == 200 and answer["status"] == "HIT"
        client.close()
        service.http.delete("/v1/namespaces/default")  # the in-process run stores them again
    return summary(timings, hits)


async def dyna_cache(
    redis_url: str, pairs: list[tuple[str, str]], **settings: Any
) -> dict[str, Any]:
    """The library (``dyna_cache.SemanticCache``) in this process: its public API, the
    static threshold unless ``settings`` say otherwise."""
    from dyna_cache import Hit, SemanticCache

    chosen = {"threshold": THRESHOLD_L2, "pair_model": "off", "replica_id": "peers",
              "index_snapshots": False, **settings}  # fmt: skip
    async with SemanticCache(redis_url=redis_url, **chosen) as cache:
        await cache.wait_ready()
        for i, (q1, _) in enumerate(pairs):
            await cache.store(q1, f"r{i}")
        timings, hits = [], 0
        for _, q2 in pairs:
            started = time.perf_counter()
            found = await cache.check(q2)
            timings.append((time.perf_counter() - started) * 1000)
            hits += isinstance(found, Hit)
        await cache.clear()
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


def gptcache(
    pairs: list[tuple[str, str]], embed: Callable[[str], np.ndarray] | None = None
) -> dict[str, Any]:
    """GPTCache with FAISS and SQLite; its SBERT embedding (torch), or ``embed``."""
    from gptcache import Cache, Config
    from gptcache.adapter.api import get, put
    from gptcache.embedding import SBERT
    from gptcache.manager import manager_factory
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

    embedding_func: Callable[..., Any]
    if embed is None:
        embedding_func = SBERT(model=str(packaged_model_path())).to_embeddings
    else:
        embedding_func = lambda data, **_: embed(data)  # noqa: E731 - its callback shape
    # GPTCache writes its FAISS index at exit (atexit); its folder is removed after that
    # (atexit runs last-registered first), not before it as a with-block would
    folder = Path(tempfile.mkdtemp(prefix="dc-bench-gptcache-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    cache = Cache()
    cache.init(
        pre_embedding_func=get_prompt,  # the api's put/get pass the prompt itself
        embedding_func=embedding_func,
        data_manager=manager_factory(
            "sqlite,faiss",
            data_dir=str(folder),
            vector_params={"dimension": 384},
            # room for every entry: its default (1,000) evicted half of what it stored. For
            # "sqlite,faiss" the factory's own max_size is ignored; the eviction's counts
            eviction_params={"max_size": len(pairs) * 2},
        ),
        similarity_evaluation=SearchDistanceEvaluation(),  # 4 - squared L2, range [0, 4]
        config=Config(similarity_threshold=1 - THRESHOLD_L2 / 4),  # hit when L2² <= 0.35
    )
    for i, (q1, _) in enumerate(pairs):
        put(q1, f"r{i}", cache_obj=cache)
    timings, hits = [], 0
    for _, q2 in pairs:
        started = time.perf_counter()
        found = get(q2, cache_obj=cache)
        timings.append((time.perf_counter() - started) * 1000)
        hits += found is not None
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
            results["dyna_cache_over_http"] = dyna_cache_http(redis.url, pairs)
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
            results["gptcache_sbert_faiss"] = gptcache(pairs)
        finally:
            redis.stop()
    ours = results["dyna_cache_over_http"]["p50_ms"]
    for peer in ("redisvl_hf_vectorizer", "redisvl_with_onnx_embedder", "gptcache_sbert_faiss"):
        results[f"speedup_p50_http_vs_{peer}"] = round(results[peer]["p50_ms"] / ours, 2)
    for name in ("dyna_cache_over_http", "dyna_cache_in_process", "redisvl_hf_vectorizer",
                 "redisvl_with_onnx_embedder", "gptcache_sbert_faiss"):  # fmt: skip
        f = results[name]
        print(f"{name:>28}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, hits {f['hits']}")
    speedups = {
        name.removeprefix("speedup_p50_http_vs_"): ratio
        for name, ratio in results.items()
        if name.startswith("speedup")
    }
    print("speedup p50 (over HTTP): " + ", ".join(f"{k} {v}x" for k, v in speedups.items()))
    write_results("peers", results)


if __name__ == "__main__":
    main()
