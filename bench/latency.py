"""HIT and MISS latency over HTTP against a real service (simulated LLM).

For each index size and embedder backend: Redis holds ``size`` entries in the queries'
scope, written through the store's own script, so FAISS searches among them: real QQP
questions with their embeddings (``--filler qqp``, the default: none of the measured
questions nor their QQP partners), or random unit vectors (``--filler random``: HNSW's
worst case, the filler of runs before session 9). Then one client sends, one at a time,
distinct QQP questions (MISS, LLM 0 ms; one a filler entry answers is left out), each
stored question with " ?" for "?" (tokenised identically, so a semantic HIT that the exact
path cannot serve), and each stored question again (exact HIT). A run with a 1000 ms LLM gives the
speedup a user sees. For semantic HITs the medians of each ``Server-Timing`` stage are
reported too (where the time went), and paired with each one, just before it, the embedder
alone in this process on the same text (``embed_alone``: what a semantic HIT cannot go
below; paired because this machine's speed drifts by tens of percent within minutes).
The client is the standard library's keep-alive ``http.client`` (httpx's own overhead,
~0.5 ms a request here, is the client's, not the cache's). Writes bench/results/latency.json.

    python bench/latency.py [--queries 200] [--sizes 1000,100000] [--backends onnx,onnx-int8,torch]
                            [--filler qqp|random]
"""

import argparse
import asyncio
import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    FILLERS,
    ServiceProcess,
    distinct_questions,
    fill_redis,
    partners_of,
    percentiles,
    write_results,
)
from service.embedded_redis import EmbeddedRedis
from service.keying.normalise import scope_of

# The seed project's published figures, quoted from its README for comparison: NOT measured
# by this script, on this machine or any other run here.
QUOTED_SEED_FIGURES = {
    "source": "quoted from the seed project's README; not measured here",
    "miss_ms": 16.87,
    "hit_ms": 13.99,
    "speedup": 1.21,
}


def semantic_variant(question: str) -> str:
    return question.replace("?", " ?") if "?" in question else f"{question} ?"


class LeanClient:
    """One keep-alive HTTP/1.1 connection, as little client work per request as Python allows."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        self.connection.request(
            "POST", path, orjson.dumps(body), {"Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        payload = response.read()
        return response.status, orjson.loads(payload), response.getheader("Server-Timing", "")

    def close(self) -> None:
        self.connection.close()


def timed(client: LeanClient, prompt: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    status, answer, timing = client.post("/v1/query", {"prompt": prompt})
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"{status}: {answer}")
    return elapsed, {**answer, "timing": timing}


def stages_of(header: str) -> dict[str, float]:
    """A ``Server-Timing`` header as {stage: ms}."""
    stages = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            stages[name] = float(duration)
    return stages


def embedder_alone(backend: str) -> Callable[[str], float]:
    """Times the embedder in this process on one text (ms): the backend as a replica runs a
    lone text (all the cores)."""
    from index.embedding.embedder import load_embedder

    embedder = load_embedder(backend, None, None)
    embedder.encode(["warm-up question?"])

    def embed(text: str) -> float:
        started = time.perf_counter()
        embedder.encode([text])
        return (time.perf_counter() - started) * 1000

    return embed


def measure(
    service: ServiceProcess, questions: list[str], embed_alone: Callable[[str], float]
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {
        "miss": [], "semantic_hit": [], "exact_hit": [], "embed_alone": [],
    }  # fmt: skip
    stage_samples: dict[str, list[float]] = {}
    stored: dict[str, str] = {}  # question → the entry its MISS stored
    service.wait_settled()  # measured on the index a replica settles on, HNSW built
    client = LeanClient(service.port)
    timed(client, "warm-up question number one?")
    timed(client, "warm-up question number one ?")
    for question in questions:
        elapsed, answer = timed(client, question)
        if answer["status"] == "MISS":
            samples["miss"].append(elapsed)
            stored[question] = answer["entry_id"]
    # a question some filler entry answered is left out: its HITs are not the ones measured
    for question in stored:
        alone = embed_alone(semantic_variant(question))
        elapsed, answer = timed(client, semantic_variant(question))
        if answer["status"] == "HIT":
            samples["semantic_hit"].append(elapsed)
            samples["embed_alone"].append(alone)
            for stage, ms in stages_of(answer["timing"]).items():
                stage_samples.setdefault(stage, []).append(ms)
    for question in stored:
        elapsed, answer = timed(client, question)
        if answer["status"] == "HIT":
            samples["exact_hit"].append(elapsed)
    client.close()
    for entry_id in stored.values():  # leave Redis as it was for the next backend
        service.http.delete(f"/v1/entries/{entry_id}")
    service.http.delete(
        f"/v1/entries/{service.query('warm-up question number one?').json()['entry_id']}"
    )
    figures: dict[str, Any] = {kind: percentiles(v) for kind, v in samples.items() if v}
    figures["served_by_filler"] = len(questions) - len(stored)
    miss_p50 = figures["miss"]["p50_ms"]
    figures["speedup_semantic_p50"] = round(miss_p50 / figures["semantic_hit"]["p50_ms"], 2)
    figures["speedup_exact_p50"] = round(miss_p50 / figures["exact_hit"]["p50_ms"], 2)
    figures["semantic_hit_over_embedding_p50_ms"] = round(
        figures["semantic_hit"]["p50_ms"] - figures["embed_alone"]["p50_ms"], 3
    )
    figures["semantic_hit_stages_p50_ms"] = {
        stage: round(statistics.median(values), 3) for stage, values in stage_samples.items()
    }
    return figures


def describe(label: str, figures: dict[str, Any]) -> None:
    parts = [
        f"{kind} p50 {f['p50_ms']:.2f} p99 {f['p99_ms']:.2f} ms (n={f['n']})"
        for kind, f in figures.items()
        if isinstance(f, dict) and "p50_ms" in f
    ]
    parts.append(f"stages {figures.get('semantic_hit_stages_p50_ms')}")
    print(
        f"{label}: "
        + ", ".join(parts)
        + f"; speedup {figures['speedup_semantic_p50']}x / {figures['speedup_exact_p50']}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--slow-queries", type=int, default=30)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--backends", default="onnx,onnx-int8,torch")
    parser.add_argument("--stages", default="off,on", help="pair_model settings compared")
    parser.add_argument("--out", default="latency", help="bench/results/<out>.json")
    parser.add_argument(
        "--filler", choices=FILLERS, default="qqp",
        help="what fills the index: real QQP questions (default) or random unit vectors",
    )  # fmt: skip
    args = parser.parse_args()
    backends = args.backends.split(",")
    results: dict[str, Any] = {
        "quoted_seed_figures": QUOTED_SEED_FIGURES,
        "queries": args.queries,
        "runs": [],
        "decision_stages": {},
    }
    # the filler holds none of the measured questions nor any QQP pairs with them
    measured = partners_of(
        distinct_questions(args.queries, seed=3) + distinct_questions(args.slow_queries, seed=4)
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="dc-bench-latency-") as folder:
            redis = EmbeddedRedis(Path(folder), appendonly=False).start()
            try:
                asyncio.run(
                    fill_redis(redis.url, size, scope=scope_of(None), filler=args.filler,
                               exclude=measured)
                )  # fmt: skip
                for backend in backends:
                    questions = distinct_questions(args.queries, seed=3)
                    with ServiceProcess(redis.url, embedder=backend, sim_latency_ms=0) as svc:
                        figures = measure(svc, questions, embedder_alone(backend))
                    run = {"entries": size, "backend": backend, "llm_ms": 0, **figures}
                    results["runs"].append(run)
                    describe(f"{size:>7} entries, {backend:>9}, LLM 0 ms", figures)
                if size == min(int(s) for s in args.sizes.split(",")):
                    # the decision stage's cost on a semantic HIT: static vs the pair model,
                    # same replica set-up, same questions, back to back
                    questions = distinct_questions(args.queries, seed=3)
                    for stage in args.stages.split(","):
                        with ServiceProcess(redis.url, embedder=backends[0], sim_latency_ms=0,
                                            pair_model=stage) as svc:  # fmt: skip
                            figures = measure(svc, questions, embedder_alone(backends[0]))
                        results["decision_stages"][stage] = figures
                        describe(f"{size:>7} entries, {backends[0]:>9}, pair model {stage}",
                                 figures)  # fmt: skip
                    questions = distinct_questions(args.slow_queries, seed=4)
                    with ServiceProcess(
                        redis.url, embedder=backends[0], sim_latency_ms=1000
                    ) as svc:
                        figures = measure(svc, questions, embedder_alone(backends[0]))
                    results["runs"].append(
                        {"entries": size, "backend": backends[0], "llm_ms": 1000, **figures}
                    )
                    describe(f"{size:>7} entries, {backends[0]:>9}, LLM 1000 ms", figures)
            finally:
                redis.stop()
    write_results(args.out, {"parameters": vars(args), **results})


if __name__ == "__main__":
    main()
