"""int8 or fp32 embeddings: do the served decisions change? (issue 17: decide by decisions
through the pair model, not by habit or by cosine parity alone).

Two replicas, one per embedder (``onnx``: fp32, the default; ``onnx-int8``), each with the
shipped decision stage (the pair model), answer the same seeded samples of the QQP dev split
(questions no training or tuning saw) by the protocol of ``bench/quality.py``: each q1
stored, each q2 looked up as served. Per seed: each embedder's served precision and recall,
and the share of lookups whose served outcome (MISS, or HIT on which entry) is the same
under both. The bar for int8 by default is the compression issue's: decisions equal on
>= 99.5 % of lookups.

Writes bench/results/embedder_decisions.json.
    python bench/embedder_decisions.py [--pairs 2000] [--seeds 11,12,13]
"""

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, ServiceProcess, write_results
from bench.quality import analyse, measure, sample, summarise
from index.training.pair_data import pairs_in, read_pairs

EMBEDDERS = ("onnx", "onnx-int8")
BAR = 0.995


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--seeds", default="11,12,13")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    dev = pairs_in(read_pairs(DATA / "qqp_open.jsonl"), "dev")
    samples = {seed: sample(dev, args.pairs, seed) for seed in seeds}
    outcomes: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    for embedder in EMBEDDERS:
        outcomes[embedder], runs[embedder] = {}, []
        replica = ServiceProcess(
            sim_latency_ms=0, log_level="error", embedder=embedder, pair_model="on",
            verifier="off", pair_model_dir=Path("models/pair").resolve(),
        )  # fmt: skip
        with replica as svc:
            decision = svc.http.get("/readyz").json()["decision"]
            assert decision["stage"] == "pair-model", decision
            radius, cut = float(decision["radius"]), float(decision["cut"])
            for seed in seeds:
                measured = measure(svc, samples[seed])
                outcomes[embedder][seed] = measured
                run = analyse(measured, radius, cut)
                runs[embedder].append({"seed": seed, "served": run["served"]})
                print(f"{embedder} seed {seed}: {run['served']}", flush=True)
    agreement = []
    for seed in seeds:
        # a lookup's served outcome: MISS, or HIT on its own entry, or HIT on another
        kinds = {
            embedder: np.where(
                outcomes[embedder][seed]["served_hit"],
                np.where(outcomes[embedder][seed]["served_own"], 1, 2),
                0,
            )
            for embedder in EMBEDDERS
        }
        same = kinds["onnx"] == kinds["onnx-int8"]
        hits_either = (kinds["onnx"] > 0) | (kinds["onnx-int8"] > 0)
        agreement.append(
            {
                "seed": seed,
                "lookups": len(same),
                "same_outcome": round(float(same.mean()), 4),
                "same_among_hits_of_either": round(float(same[hits_either].mean()), 4),
                "hit_only_fp32": int(((kinds["onnx"] > 0) & (kinds["onnx-int8"] == 0)).sum()),
                "hit_only_int8": int(((kinds["onnx-int8"] > 0) & (kinds["onnx"] == 0)).sum()),
            }
        )
        print(f"seed {seed}: {agreement[-1]}", flush=True)
    lowest = min(a["same_outcome"] for a in agreement)
    write_results(
        "embedder_decisions",
        {
            "parameters": {"pairs": args.pairs, "seeds": seeds, "stage": "pair model"},
            "bar": BAR,
            "served": {
                e: {"summary": summarise(runs[e], "served"), "runs": runs[e]} for e in EMBEDDERS
            },
            "agreement": agreement,
            "lowest_same_outcome": lowest,
            "int8_passes": lowest >= BAR,
        },
    )


if __name__ == "__main__":
    main()
