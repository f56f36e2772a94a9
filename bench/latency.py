"""HIT and MISS latency over HTTP against a real service (simulated LLM).

For each simulated LLM latency: store nothing, then send distinct QQP questions (MISS),
the same questions reworded slightly (semantic HIT), and the same questions again (exact
HIT). Reports p50/p95/p99 per kind and the MISS/HIT speedup. Writes bench/results/latency.json.

    python bench/latency.py [--queries 200] [--slow-queries 30]
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, distinct_questions, percentiles, write_results

SEED_FIGURES = {"miss_ms": 16.87, "hit_ms": 13.99, "speedup": 1.21}


def timed(service: ServiceProcess, prompt: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = service.http.post("/v1/query", json={"prompt": prompt})
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.json()["status"]


def run(sim_latency_ms: int, questions: list[str], embedder: str) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"miss": [], "semantic_hit": [], "exact_hit": []}
    with ServiceProcess(sim_latency_ms=sim_latency_ms, embedder=embedder) as service:
        for warm_up in ("warm-up question one", "warm-up question one"):
            timed(service, warm_up)
        for question in questions:
            elapsed, status = timed(service, question)
            if status == "MISS":
                samples["miss"].append(elapsed)
        for question in questions:
            elapsed, status = timed(service, f"{question.rstrip('?')} please?")
            if status == "HIT":
                samples["semantic_hit"].append(elapsed)
        for question in questions:
            elapsed, status = timed(service, question)
            if status == "HIT":
                samples["exact_hit"].append(elapsed)
    figures = {kind: percentiles(values) for kind, values in samples.items() if values}
    miss_p50 = figures["miss"]["p50_ms"]
    figures["speedup_semantic_p50"] = round(miss_p50 / figures["semantic_hit"]["p50_ms"], 2)
    figures["speedup_exact_p50"] = round(miss_p50 / figures["exact_hit"]["p50_ms"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=200, help="queries per kind at 0 ms LLM")
    parser.add_argument("--slow-queries", type=int, default=30, help="queries at 1000 ms LLM")
    parser.add_argument("--embedder", default="onnx")
    args = parser.parse_args()
    results: dict[str, Any] = {"seed_figures": SEED_FIGURES, "embedder": args.embedder, "runs": {}}
    for sim_latency_ms, count in ((0, args.queries), (1000, args.slow_queries)):
        figures = run(
            sim_latency_ms, distinct_questions(count, seed=sim_latency_ms + 1), args.embedder
        )
        results["runs"][f"llm_{sim_latency_ms}ms"] = figures
        print(
            f"LLM {sim_latency_ms:>4} ms: "
            + ", ".join(
                f"{kind} p50 {f['p50_ms']:.2f} ms p95 {f['p95_ms']:.2f} ms (n={f['n']})"
                for kind, f in figures.items()
                if isinstance(f, dict)
            )
            + f"; speedup {figures['speedup_semantic_p50']}x semantic, "
            f"{figures['speedup_exact_p50']}x exact"
        )
    write_results("latency", results)


if __name__ == "__main__":
    main()
