"""Would the verifier's probability in the pair model's stack serve fewer wrong answers?

The pair model's stack (``training/pair_calibration.py``) combines the cross-encoder's
logit with the distance; this adds the verifier's logit as a third feature. Both stacks are
fitted on the tune split's lookups inside the shipped radius, each cut chosen there as in
training (best precision at recall >= 0.6); then both are scored on QQP dev samples (the
quality benchmark's samples: ``bench/quality.py``'s ``sample``, seeds 11, 12, 13), in
process, with the shipped models. Nothing is chosen on the dev figures.
Writes bench/results/verifier_in_stack.json.   python bench/verifier_in_stack.py
"""

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, write_results
from bench.quality import sample
from index.decision.pair_model import PairModel, combined
from index.decision.verifier import Verifier
from index.embedding.embedder import load_embedder
from training.pair_calibration import operating_point, served_scores, tune_lookups
from training.pair_data import pairs_in, read_pairs
from training.pair_protocol import Lookups, look_up_in_chunks, verifier_probabilities

MIN_RECALL = 0.6
SEEDS = (11, 12, 13)


def logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    result: np.ndarray = np.log(clipped / (1 - clipped))
    return result


def feature_sets(
    lookups: Lookups, pair_model: PairModel, verifier: Verifier
) -> dict[str, np.ndarray]:
    pair = logit(pair_model.probabilities(list(zip(lookups.queries, lookups.candidates,
                                                   strict=True))))  # fmt: skip
    with_verifier = logit(verifier_probabilities(verifier, lookups))
    return {
        "pair model, distance": np.column_stack([pair, lookups.distance]),
        "pair model, distance, verifier": np.column_stack([pair, lookups.distance, with_verifier]),
    }


def served_figures(
    lookups: Lookups, served: np.ndarray, radius: float, cut: float
) -> dict[str, Any]:
    hits = (lookups.distance < radius) & (served >= cut)
    right = int((hits & lookups.right).sum())
    return {
        "hits": int(hits.sum()),
        "precision": round(right / max(1, int(hits.sum())), 4),
        "recall": round(right / max(1, lookups.answerable_count), 4),
    }


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    pairs = list(read_pairs(DATA / "qqp_open.jsonl"))
    embedder = load_embedder("onnx", None, None, "models/onnx")
    pair_model = PairModel.load(Path("models/pair"))
    verifier = Verifier.load(Path("models/verifier/verifier.npz"))
    radius = pair_model.radius
    tune = tune_lookups(pairs_in(pairs, "tune"), embedder.encode)
    inside = tune.distance < radius
    stacks: dict[str, Any] = {}
    results: dict[str, Any] = {"radius": radius, "min_recall_on_tune": MIN_RECALL, "stacks": {}}
    for name, features in feature_sets(tune, pair_model, verifier).items():
        fitted = LogisticRegression().fit(features[inside], tune.right[inside])
        point = operating_point(tune, served_scores(tune, fitted.predict_proba(features)[:, 1]),
                                radius, MIN_RECALL)  # fmt: skip
        stacks[name] = (fitted, point["cut"])
        results["stacks"][name] = {
            "weights": [round(float(w), 4) for w in fitted.coef_[0]],
            "bias": round(float(fitted.intercept_[0]), 4),
            "tune": {k: round(v, 4) for k, v in point.items()},
            "dev": [],
        }
    results["stacks"]["shipped (pair_model.json)"] = {"cut": pair_model.cut, "dev": []}
    for seed in SEEDS:
        dev = look_up_in_chunks(sample(pairs_in(pairs, "dev"), 2000, seed), embedder.encode,
                                2000)  # fmt: skip
        for name, features in feature_sets(dev, pair_model, verifier).items():
            fitted, cut = stacks[name]
            served = served_scores(dev, fitted.predict_proba(features)[:, 1])
            results["stacks"][name]["dev"].append(
                {"seed": seed, **served_figures(dev, served, radius, cut)}
            )
        raw = pair_model.probabilities(list(zip(dev.queries, dev.candidates, strict=True)))
        shipped = served_scores(dev, combined(raw, dev.distance, pair_model.stack))
        results["stacks"]["shipped (pair_model.json)"]["dev"].append(
            {"seed": seed, **served_figures(dev, shipped, radius, pair_model.cut)}
        )
    for name, stack in results["stacks"].items():
        runs = stack["dev"]
        stack["dev_mean"] = {
            key: round(float(np.mean([run[key] for run in runs])), 4)
            for key in ("precision", "recall")
        }
        print(f"{name:>32}: dev precision {[r['precision'] for r in runs]} "
              f"recall {[r['recall'] for r in runs]}")  # fmt: skip
    write_results("verifier_in_stack", results)


if __name__ == "__main__":
    main()
