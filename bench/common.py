"""Shared by the benchmark scripts: a service in a subprocess, data, percentiles, results."""

import asyncio
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.tools.replica_process import ServiceProcess

__all__ = ["ServiceProcess"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = Path(os.environ.get("DYNACACHE_DATA_DIR", ROOT.parent / "shared" / "data"))


async def fill_redis(
    redis_url: str, count: int, scope: str = "bench", ns: str = "default", seed: int = 11
) -> float:
    """Write ``count`` entries with random unit vectors through the store's own write script
    (what a replica rebuilds from is the same as for real entries); seconds taken."""
    from index.embedding.embedder import EMBEDDING_DIM
    from index.store.connection import connect
    from index.store.records import NewEntry, Retention
    from index.store.redis_store import RedisStore

    client = connect(redis_url, 30)
    store = RedisStore(client, origin="bench-fill", dim=EMBEDDING_DIM)
    await store.ensure_search_index()
    rng = np.random.default_rng(seed)
    in_flight = asyncio.Semaphore(32)

    async def write(position: int, vector: np.ndarray) -> None:
        async with in_flight:
            await store.write(
                NewEntry(
                    ns=ns,
                    scope=scope,
                    model="",
                    prompt=f"filler {position}",
                    normalised_prompt=f"filler {position}",
                    response="filler",
                    vector=vector,
                    llm_ms=0,
                    cost=0,
                    retention=Retention(ttl=0),
                )
            )

    started = time.perf_counter()
    for offset in range(0, count, 2000):
        vectors = random_unit_vectors(min(2000, count - offset), rng)
        await asyncio.gather(*(write(offset + j, v) for j, v in enumerate(vectors)))
    await client.aclose()
    return time.perf_counter() - started


def random_unit_vectors(count: int, rng: np.random.Generator, dim: int = 384) -> np.ndarray:
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def qqp_pairs() -> Iterator[dict[str, Any]]:
    with open(DATA / "qqp_open.jsonl", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def distinct_questions(count: int, seed: int = 7, skip: int = 0) -> list[str]:
    """``count`` distinct QQP questions, seeded, after skipping the first ``skip``."""
    seen: dict[str, None] = {}
    for pair in qqp_pairs():
        for question in (pair["q1"], pair["q2"]):
            seen.setdefault(question.strip(), None)
    questions = [q for q in seen if q]
    random.Random(seed).shuffle(questions)
    return questions[skip : skip + count]


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(at(0.95), 3),
        "p99_ms": round(at(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path
