"""Shared by the benchmark scripts: a service in a subprocess, data, percentiles, results."""

import asyncio
import hashlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from devtools import replica_process
from index.decision.pair_model import META_NAME
from index.model_paths import resolved

__all__ = ["ServiceProcess"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = Path(os.environ.get("DYNACACHE_DATA_DIR", ROOT.parent / "shared" / "data"))
EMBEDDING_CACHE = Path.home() / ".cache" / "dyna-cache" / "bench"


Filler = Literal["random", "qqp"]
FILLERS: tuple[Filler, ...] = ("random", "qqp")


async def fill_redis(
    redis_url: str,
    count: int,
    scope: str = "bench",
    ns: str = "default",
    seed: int = 11,
    filler: Filler = "random",
    exclude: Collection[str] = (),
) -> float:
    """Write ``count`` entries through the store's own write script (what a replica rebuilds
    from is the same as for real entries); seconds taken. ``filler``: random unit vectors
    (HNSW's worst case: no neighbourhoods, every point about as far as any other), or real
    QQP questions with their embeddings (``qqp_filler``; none of ``exclude``)."""
    from index.embedding.protocol import EMBEDDING_DIM
    from index.store.connection import connect
    from index.store.records import NewEntry, Retention
    from index.store.redis_store import RedisStore
    from service.keying.normalise import normalise_prompt

    rng = np.random.default_rng(seed)
    prompts: list[str] = [f"filler {position}" for position in range(count)]
    real_vectors: np.ndarray | None = None
    if filler == "qqp":
        prompts, real_vectors = qqp_filler(count, exclude, seed)

    client = connect(redis_url, 30)
    store = RedisStore(client, origin="bench-fill", dim=EMBEDDING_DIM)
    await store.search.ensure_search_index()
    in_flight = asyncio.Semaphore(32)

    async def write(position: int, vector: np.ndarray) -> None:
        async with in_flight:
            await store.write(
                NewEntry(
                    ns=ns,
                    scope=scope,
                    model="",
                    prompt=prompts[position],
                    normalised_prompt=normalise_prompt(prompts[position]),
                    response="filler",
                    vector=vector,
                    llm_ms=0,
                    cost=0,
                    retention=Retention(ttl=0),
                )
            )

    started = time.perf_counter()
    for offset in range(0, count, 2000):
        vectors = (
            random_unit_vectors(min(2000, count - offset), rng)
            if real_vectors is None
            else real_vectors[offset : offset + 2000]
        )
        await asyncio.gather(*(write(offset + j, v) for j, v in enumerate(vectors)))
    await client.aclose()
    return time.perf_counter() - started


def qqp_filler(
    count: int, exclude: Collection[str] = (), seed: int = 11
) -> tuple[list[str], np.ndarray]:
    """``count`` distinct QQP questions (seeded order, none of ``exclude``) and their
    embeddings by the default embedder (fp32 ONNX): a cache's real neighbourhoods. The
    embeddings of every distinct question are computed once per machine (~5 min here) and
    kept in ``~/.cache/dyna-cache/bench``, named by the questions and the model."""
    questions = sorted(all_questions())
    vectors = qqp_vectors(questions)
    excluded = set(exclude)
    order = [i for i in range(len(questions)) if questions[i] not in excluded]
    random.Random(seed).shuffle(order)
    if count > len(order):
        raise ValueError(f"{count} QQP questions asked for, {len(order)} available")
    chosen = order[:count]
    return [questions[i] for i in chosen], np.ascontiguousarray(vectors[chosen])


def qqp_vectors(questions: list[str]) -> np.ndarray:
    """The default embedder's vectors of ``questions``, computed once and kept in
    ``EMBEDDING_CACHE`` under a name made of the questions and the model."""
    from index.embedding.embedder import load_embedder

    model = ROOT / "models" / "onnx" / "model.onnx"
    digest = hashlib.sha256("\n".join(questions).encode())
    digest.update(str(model.stat().st_size).encode())
    cached = EMBEDDING_CACHE / f"qqp-{digest.hexdigest()[:16]}.npy"
    if cached.exists():
        loaded: np.ndarray = np.load(cached)
        return loaded
    embedder = load_embedder("onnx", None, None, str(model.parent))
    vectors = np.vstack(
        [embedder.encode(questions[i : i + 64]) for i in range(0, len(questions), 64)]
    ).astype(np.float32)
    EMBEDDING_CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(cached)
    return vectors


def random_unit_vectors(count: int, rng: np.random.Generator, dim: int = 384) -> np.ndarray:
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def qqp_pairs() -> Iterator[dict[str, Any]]:
    with open(DATA / "qqp_open.jsonl", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def all_questions() -> list[str]:
    """Every distinct QQP question (stripped), in the file's order."""
    seen: dict[str, None] = {}
    for pair in qqp_pairs():
        for question in (pair["q1"], pair["q2"]):
            seen.setdefault(question.strip(), None)
    return [q for q in seen if q]


def distinct_questions(count: int, seed: int = 7, skip: int = 0) -> list[str]:
    """``count`` distinct QQP questions, seeded, after skipping the first ``skip``."""
    questions = all_questions()
    random.Random(seed).shuffle(questions)
    return questions[skip : skip + count]


def partners_of(questions: Collection[str]) -> set[str]:
    """``questions`` and every question QQP pairs with one of them."""
    wanted = set(questions)
    found = set(wanted)
    for pair in qqp_pairs():
        first, second = pair["q1"].strip(), pair["q2"].strip()
        if first in wanted or second in wanted:
            found.update((first, second))
    return found


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


class ServiceProcess(replica_process.ServiceProcess):
    """A replica as shipped: the default decision stage (``pair_model=auto``) unless a
    benchmark names another (the harness's own default, for tests, is the static
    threshold)."""

    def __init__(self, redis_url: str | None = None, port: int | None = None, **settings: Any):
        super().__init__(redis_url, port, **{"pair_model": "auto", **settings})


def shipped_default() -> dict[str, Any]:
    """The default as shipped, which every benchmark runs unless its results name another
    stage: the decision stage and the models' versions."""
    pair = resolved(Path("models/pair")) / META_NAME
    version = json.loads(pair.read_text()).get("version") if pair.exists() else None
    return {
        "decision_stage": "pair-model" if version else "static",
        "pair_model_version": version,
        "embedder": "onnx (models/embedder: int8 weights, float32 compute)",
    }


def write_results(name: str, results: dict[str, Any], keep: bool = True) -> Path:
    """Write ``<name>.json`` into bench/results (``keep``), else into a temporary folder:
    a run that checks (CI's chaos run) leaves the tree as it found it."""
    folder = RESULTS if keep else Path(tempfile.gettempdir()) / "dyna-cache-results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "default_as_shipped": shipped_default(),
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path
