"""Cheaper embedders: do the served decisions change? (issue 17: decide int8 by decisions
through the pair model, not by habit or by cosine parity alone; measure a distilled
student's decisions against the teacher's on the dev split before even considering it).

A replica per embedder (fp32 ``onnx``, the default and the reference; then each candidate:
``int8`` the quantised export, ``student`` the 3-layer model of
``training/student_distill.py``), each with the shipped decision stage (the pair
model), answers the same seeded samples of the QQP dev split (questions no training or
tuning saw) by the protocol of ``bench/quality.py``: each q1 stored, each q2 looked up as
served. Per seed: each embedder's served precision and recall, and the share of lookups
whose served outcome (MISS, or HIT on which entry) is the same as fp32's. A cheaper
embedder passes when its served precision and recall each fall, on average over the same
samples, by no more than fp32's spread between samples (issue 29's rule); the agreement of
decisions (the earlier bar: the same outcome on >= 99.5 %) is reported beside.
With ``--speed``: one short query's encode time in process, the embedders interleaved
(run it on a quiet machine).

Writes bench/results/embedder_decisions.json (candidates not run keep their figures).
    python bench/embedder_decisions.py [--candidates int8,student] [--pairs 2000]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, RESULTS, ServiceProcess, write_results
from bench.quality import analyse, measure, sample, summarise
from index.embedding.onnx_embedder import FP32_NAME, INT8_NAME, TOKENIZER_NAME, OnnxEmbedder
from training.pair_data import DuplicateClusters, pairs_in, read_pairs

REFERENCE = "fp32"
# replica settings of each embedder, and its model file (for --speed)
EMBEDDERS: dict[str, tuple[dict[str, Any], Path]] = {
    "fp32": ({"embedder": "onnx"}, Path("models/onnx") / FP32_NAME),
    "int8": ({"embedder": "onnx-int8"}, Path("models/onnx") / INT8_NAME),
    "student": (
        {"embedder": "onnx", "onnx_dir": Path("models/student").resolve()},
        Path("models/student") / FP32_NAME,
    ),
}
BAR = 0.995
QUERY = "What is the best way to learn a new language as an adult?"


def served_kinds(measured: dict[str, np.ndarray]) -> np.ndarray:
    """Per lookup: 0 MISS, 1 HIT on its own entry, 2 HIT on another."""
    return np.where(measured["served_hit"], np.where(measured["served_own"], 1, 2), 0)


def decisions(
    name: str, seeds: list[int], samples: dict[int, Any], clusters: DuplicateClusters
) -> dict[str, Any]:
    settings, _ = EMBEDDERS[name]
    replica = ServiceProcess(
        sim_latency_ms=0, log_level="error", pair_model="on", verifier="off",
        pair_model_dir=Path("models/pair").resolve(), **settings,
    )  # fmt: skip
    runs, kinds = [], {}
    with replica as svc:
        decision = svc.http.get("/readyz").json()["decision"]
        assert decision["stage"] == "pair-model", decision
        radius, cut = float(decision["radius"]), float(decision["cut"])
        for seed in seeds:
            measured = measure(svc, samples[seed], clusters)
            kinds[seed] = served_kinds(measured)
            runs.append({"seed": seed, "served": analyse(measured, radius, cut)["served"]})
            print(f"{name} seed {seed}: {runs[-1]['served']}", flush=True)
    return {"runs": runs, "kinds": kinds}


def single_text_p50(names: list[str], rounds: int = 300) -> dict[str, float]:
    """One short query's encode time in process, the embedders taking turns."""
    models = {}
    for name in names:
        model_file = EMBEDDERS[name][1]
        models[name] = OnnxEmbedder(model_file, model_file.parent / TOKENIZER_NAME)
        models[name].encode([QUERY])
    timings: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model.encode([QUERY])
            timings[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(values), 3) for name, values in timings.items()}


def serves_as_well(
    candidate: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> dict[str, Any]:
    """The rule a cheaper build is judged by (issue 29): on the same samples, its served
    precision and recall each fall, on average, by no more than the reference's spread
    between samples (the standard deviation over the seeds); raw agreement of decisions
    is reported beside, not judged."""
    verdict: dict[str, Any] = {}
    for metric in ("precision", "recall"):
        ours = np.array([run["served"][metric] for run in candidate])
        theirs = np.array([run["served"][metric] for run in reference])
        spread = float(theirs.std(ddof=1)) if len(theirs) > 1 else 0.0
        verdict[f"{metric}_change"] = round(float((ours - theirs).mean()), 4)
        verdict[f"{metric}_spread"] = round(spread, 4)
    verdict["passes"] = all(
        verdict[f"{m}_change"] >= -verdict[f"{m}_spread"] for m in ("precision", "recall")
    )
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", default="int8,student")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--speed", action="store_true", help="also time one query's encode")
    parser.add_argument("--speed-only", action="store_true", help="only time it (quiet machine)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    candidates = [c for c in args.candidates.split(",") if c]
    dev = pairs_in(read_pairs(DATA / "qqp_open.jsonl"), "dev")
    samples = {seed: sample(dev, args.pairs, seed) for seed in seeds}
    previous = RESULTS / "embedder_decisions.json"
    kept = json.loads(previous.read_text()) if previous.exists() else {}
    served = dict(kept.get("served", {}))
    agreement = dict(kept.get("agreement", {}))
    if args.speed_only:
        kept["single_text_p50_ms"] = single_text_p50([REFERENCE, *candidates])
        print(f"one query's encode, p50 ms: {kept['single_text_p50_ms']}")
        stamp = ("benchmark", "measured_at", "machine")
        write_results("embedder_decisions", {k: v for k, v in kept.items() if k not in stamp})
        return
    clusters = DuplicateClusters(dev)
    reference = decisions(REFERENCE, seeds, samples, clusters)
    served[REFERENCE] = {"summary": summarise(reference["runs"], "served"), **reference}
    for name in candidates:
        measured = decisions(name, seeds, samples, clusters)
        served[name] = {"summary": summarise(measured["runs"], "served"), **measured}
        per_seed = []
        for seed in seeds:
            ours, theirs = measured["kinds"][seed], reference["kinds"][seed]
            same = ours == theirs
            either = (ours > 0) | (theirs > 0)
            per_seed.append({
                "seed": seed,
                "lookups": len(same),
                "same_outcome": round(float(same.mean()), 4),
                "same_among_hits_of_either": round(float(same[either].mean()), 4),
                "hit_only_reference": int(((theirs > 0) & (ours == 0)).sum()),
                "hit_only_candidate": int(((ours > 0) & (theirs == 0)).sum()),
            })  # fmt: skip
            print(f"{name} seed {seed}: {per_seed[-1]}", flush=True)
        lowest = min(row["same_outcome"] for row in per_seed)
        agreement[name] = {"seeds": per_seed, "lowest_same_outcome": lowest,
                           "agrees_at_bar": lowest >= BAR,
                           **serves_as_well(measured["runs"], reference["runs"])}  # fmt: skip
    for figures in served.values():
        figures.pop("kinds", None)
    results: dict[str, Any] = {
        "parameters": {
            "pairs": args.pairs,
            "seeds": seeds,
            "stage": "pair model",
            "reference": REFERENCE,
        },
        "bar": BAR,
        "served": served,
        "agreement": agreement,
        "single_text_p50_ms": kept.get("single_text_p50_ms"),
    }
    if args.speed:
        results["single_text_p50_ms"] = single_text_p50([REFERENCE, *candidates])
        print(f"one query's encode, p50 ms: {results['single_text_p50_ms']}")
    write_results("embedder_decisions", results)


if __name__ == "__main__":
    main()
