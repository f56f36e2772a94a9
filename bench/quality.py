"""Hit quality: precision and recall of the static threshold and of the verifier, through
the HTTP API of a running replica.

Protocol (issue 8): a seeded sample of ``--pairs`` labelled pairs; each q1 is stored with a
unique response (``POST /v1/entries``); each q2 is looked up (``POST /v1/query``,
``cache: only``). A hit is right only when it returns the pair's own entry (its stored
question is the pair's q1) and the pair is labelled duplicate. Precision = right hits /
hits, recall = right hits / duplicate pairs.

Each q2 is asked twice: once with ``threshold: 4`` and ``verifier_cut: 0``, which serves the
nearest candidate with its distance and the verifier's probability (from which both curves
are drawn: static, hit when distance < t; verifier, hit when distance < its radius and
probability >= cut); and once as the service is configured (verifier on, its radius and
cut), the operating point as served.

Sets: the QQP dev split (``index/training/pair_data.py``: questions no training or tuning saw), and
STS-B (``duplicate`` as labelled in the file; never used in training). Within a sample,
pairs that share a question with an earlier one are left out (two stored copies of one
question cannot be told apart). Writes bench/results/quality.json and quality.png.

    python bench/quality.py [--pairs 2000] [--seed 11]
"""

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, RESULTS, ServiceProcess, percentiles, write_results
from index.policy.distance import DEFAULT_THRESHOLD
from index.policy.verifier import Verifier
from index.training.pair_data import Pair, distinct_pairs, normal_form, pairs_in, read_pairs
from index.training.pair_protocol import CUTS, FINE_RADII, Point, best_point, score

TARGET = {"precision": 0.80, "recall": 0.60}


def sample(pairs: list[Pair], count: int, seed: int) -> list[Pair]:
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    return distinct_pairs(shuffled)[:count]


def measure(svc: ServiceProcess, pairs: list[Pair]) -> dict[str, np.ndarray]:
    svc.http.delete("/v1/namespaces/default").raise_for_status()
    for start in range(0, len(pairs), 500):
        batch = [{"prompt": p.q1, "response": f"answer {start + i}"}
                 for i, p in enumerate(pairs[start : start + 500])]  # fmt: skip
        svc.http.post("/v1/entries", json={"entries": batch}).raise_for_status()
    distance, confidence, own, served_hit, served_own = [], [], [], [], []
    for pair in pairs:
        probe = svc.query(pair.q2, cache="only", threshold=4.0, verifier_cut=0.0).json()
        distance.append(probe["distance"] if probe["status"] == "HIT" else np.inf)
        confidence.append(1.0 if probe["confidence"] is None else probe["confidence"])
        own.append(normal_form(probe["matched_prompt"] or "") == normal_form(pair.q1))
        served = svc.query(pair.q2, cache="only").json()
        served_hit.append(served["status"] == "HIT")
        served_own.append(normal_form(served["matched_prompt"] or "") == normal_form(pair.q1))
    return {
        "distance": np.array(distance),
        "confidence": np.array(confidence),
        "own": np.array(own),
        "duplicate": np.array([p.duplicate for p in pairs]),
        "served_hit": np.array(served_hit),
        "served_own": np.array(served_own),
    }


def figures(p: Point | None, **label: float) -> dict[str, Any] | None:
    """A point as written to quality.json."""
    if p is None:
        return None
    return {**label, "hits": p.hits, "hit_rate": round(p.hit_rate, 4),
            "precision": round(p.precision, 4), "recall": round(p.recall, 4),
            "f1": round(p.f1, 4)}  # fmt: skip


def best_precision_at_recall(points: list[Point]) -> float | None:
    reaching = [p.precision for p in points if p.recall >= TARGET["recall"]]
    return round(max(reaching), 4) if reaching else None


def analyse(m: dict[str, np.ndarray], radius: float, cut: float) -> dict[str, Any]:
    right = m["own"] & m["duplicate"]
    duplicates = int(m["duplicate"].sum())
    static = [score(m["distance"] < t, right, duplicates, t, None) for t in FINE_RADII]
    inside = m["distance"] < radius
    verifier = [score(inside & (m["confidence"] >= c), right, duplicates, radius, c)
                for c in CUTS]  # fmt: skip
    default = score(m["distance"] < DEFAULT_THRESHOLD, right, duplicates, DEFAULT_THRESHOLD, None)
    served = score(m["served_hit"], m["served_own"] & m["duplicate"], duplicates, radius, cut)
    static_best = best_point(static, TARGET["precision"], cautious=False)
    verifier_best = best_point(verifier, TARGET["precision"], cautious=False)
    return {
        "pairs": len(right),
        "duplicates": duplicates,
        "static_default": figures(default, threshold=DEFAULT_THRESHOLD),
        "verifier_served": figures(served, radius=radius, cut=cut),
        "static_best_precision_at_recall_0.6": best_precision_at_recall(static),
        "verifier_best_precision_at_recall_0.6": best_precision_at_recall(verifier),
        "static_best_at_precision_0.8": figures(static_best, threshold=static_best.radius)
        if static_best
        else None,
        "verifier_best_at_precision_0.8": figures(verifier_best, cut=verifier_best.cut or 0.0)
        if verifier_best
        else None,
        "static_curve": [figures(p, threshold=p.radius) for p in static],
        "verifier_curve": [figures(p, cut=p.cut or 0.0) for p in verifier],
    }


def decision_latency(verifier: Verifier, pairs: list[Pair], onnx_dir: str) -> dict[str, float]:
    """Milliseconds per verifier decision (features and networks), in process."""
    from index.embedding.embedder import load_embedder

    encode = load_embedder("onnx", None, None, onnx_dir).encode
    pairs = pairs[:500]
    vectors = encode([q for p in pairs for q in (p.q2, p.q1)])
    samples = []
    for i, pair in enumerate(pairs):
        u, v = vectors[2 * i], vectors[2 * i + 1]
        d = float(np.sum((u - v) ** 2))
        started = time.perf_counter()
        verifier.probability(pair.q2, pair.q1, u, v, d, d + 0.1)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 5))
    for axis, (name, r) in zip(np.atleast_1d(axes), results.items(), strict=True):
        for key, label, style in (("static_curve", "static threshold", "-"),
                                  ("verifier_curve", "verifier (cut varies)", "-")):  # fmt: skip
            curve = [p for p in r[key] if p["hits"]]
            axis.plot([p["recall"] for p in curve], [p["precision"] for p in curve], style,
                      label=label)  # fmt: skip
        d, v = r["static_default"], r["verifier_served"]
        axis.plot(d["recall"], d["precision"], "o", label=f"static default (d² < {d['threshold']})")
        axis.plot(v["recall"], v["precision"], "s", label="verifier as served")
        axis.axhline(TARGET["precision"], color="grey", linestyle=":", linewidth=1)
        axis.axvline(TARGET["recall"], color="grey", linestyle=":", linewidth=1)
        axis.set(title=f"{name} ({r['pairs']} pairs)", xlabel="recall", ylabel="precision",
                 xlim=(0, 1), ylim=(0, 1))  # fmt: skip
        axis.grid(alpha=0.3)
        axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--verifier", type=Path, default=Path("models/verifier/verifier.npz"))
    args = parser.parse_args()
    verifier = Verifier.load(args.verifier)
    sets = {
        "qqp_dev": sample(pairs_in(read_pairs(DATA / "qqp_open.jsonl"), "dev"), args.pairs,
                          args.seed),
        "stsb": sample(list(read_pairs(DATA / "stsb_train_dev.jsonl")), args.pairs, args.seed),
    }  # fmt: skip
    results: dict[str, Any] = {}
    service = ServiceProcess(
        sim_latency_ms=0, log_level="error", verifier="on", verifier_path=args.verifier.resolve()
    )
    with service as svc:
        for name, pairs in sets.items():
            started = time.perf_counter()
            results[name] = analyse(measure(svc, pairs), verifier.radius, verifier.cut)
            r = results[name]
            print(f"{name}: {r['pairs']} pairs ({r['duplicates']} duplicates), "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
            print(f"  static default  {r['static_default']}")
            print(f"  verifier served {r['verifier_served']}")
            print(f"  best precision at recall >= 0.6: static "
                  f"{r['static_best_precision_at_recall_0.6']}, verifier "
                  f"{r['verifier_best_precision_at_recall_0.6']}")  # fmt: skip
    latency = decision_latency(verifier, sets["qqp_dev"], "models/onnx")
    print(f"verifier decision: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms")
    write_results("quality", {
        "verifier_decision": latency,
        "parameters": {**vars(args), "verifier": str(args.verifier)},
        "verifier": {"radius": verifier.radius, "cut": verifier.cut,
                     "trained": verifier.meta.get("trained_at"), "tune": verifier.meta.get("tune")},
        "target": TARGET,
        "sets": results,
    })  # fmt: skip
    plot(results, RESULTS / "quality.png")


if __name__ == "__main__":
    main()
