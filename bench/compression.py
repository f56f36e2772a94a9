"""Compressed HNSW sub-indexes: do they decide as the float index does, and what do they save?

For each of 3 seeds, 2,000 pairs of the QQP dev split (questions no model here was trained
or tuned on) have their q1 stored in one (namespace, scope) among 20,000 other QQP questions
(distractors, so that the sub-index is HNSW and a lookup has neighbours to confuse); each
q2 is looked up. A decision is the nearest entry and whether it is inside the threshold
(HIT) or not (MISS); two indexes agree on a lookup when both MISS, or both HIT the same
entry. Compared with the float HNSW (what a replica builds without compression) and with
exact search, at the static threshold (0.35) and at the pair model's radius (0.5, the
candidates it judges). Memory: FAISS's serialised size per entry.
Writes bench/results/compression.json.   python bench/compression.py
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, write_results
from index.decision.distance import DEFAULT_THRESHOLD
from index.embedding.embedder import load_embedder
from index.store.keys import entry_id_of
from index.store.records import IndexedVector
from index.vectors.local_index import LocalIndex
from index.vectors.sub_index import CODECS, IndexShape
from training.pair_data import pairs_in, read_pairs

PAIR_MODEL_RADIUS = 0.5
DISTRACTORS = 20_000
SAMPLE = 2_000


def decisions(index: LocalIndex, queries: np.ndarray, threshold: float) -> list[str | None]:
    """Per query: the entry a HIT would serve, or None (MISS)."""
    found = []
    for row in queries:
        nearest = index.search("ns", "s", row, k=1)
        found.append(nearest[0].entry_id if nearest and nearest[0].distance <= threshold else None)
    return found


def agreement(a: list[str | None], b: list[str | None]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def build(codec: str, stored: np.ndarray) -> tuple[LocalIndex, float, float]:
    shape = IndexShape(hnsw_min_entries=1000, codec=codec)
    index = LocalIndex(stored.shape[1], shape, maintain_inline=True)
    started = time.perf_counter()
    index.add_many(
        IndexedVector("ns", "s", entry_id_of(i + 1), row, seq=i + 1) for i, row in enumerate(stored)
    )
    seconds = time.perf_counter() - started
    ((_, part),) = [(p.ns, p) for p in index.parts()]
    bytes_per_entry = faiss.serialize_index(part.faiss).nbytes / len(stored)
    return index, seconds, bytes_per_entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    pairs = read_pairs(DATA / "qqp_open.jsonl")
    dev = pairs_in(pairs, "dev")
    dev_questions = {p.q1 for p in dev} | {p.q2 for p in dev}
    others = list(dict.fromkeys(q for p in pairs_in(read_pairs(DATA / "qqp_open.jsonl"),
                                                    "train") for q in (p.q1, p.q2)))  # fmt: skip
    distractors = [q for q in random.Random(0).sample(others, DISTRACTORS + 2000)
                   if q not in dev_questions][:DISTRACTORS]  # fmt: skip
    embedder = load_embedder("onnx", None, None)
    distractor_vectors = embedder.encode(distractors)
    runs: list[dict[str, Any]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        sample = random.Random(seed).sample(dev, SAMPLE)
        stored = np.vstack([embedder.encode([p.q1 for p in sample]), distractor_vectors])
        queries = embedder.encode([p.q2 for p in sample])
        exact = faiss.IndexFlatL2(stored.shape[1])
        exact.add(stored)
        distances, ids = exact.search(queries, 1)
        run: dict[str, Any] = {"seed": seed, "entries": len(stored), "codecs": {}}
        reference: dict[float, list[str | None]] = {}
        exact_decisions = {
            threshold: [entry_id_of(int(i) + 1) if d <= threshold else None
                        for d, i in zip(distances[:, 0], ids[:, 0], strict=True)]
            for threshold in (DEFAULT_THRESHOLD, PAIR_MODEL_RADIUS)
        }  # fmt: skip
        for codec in CODECS:
            index, seconds, per_entry = build(codec, stored)
            figures: dict[str, Any] = {"build_s": round(seconds, 2),
                                       "bytes_per_entry": round(per_entry, 1)}  # fmt: skip
            for threshold in (DEFAULT_THRESHOLD, PAIR_MODEL_RADIUS):
                made = decisions(index, queries, threshold)
                if codec == "float":
                    reference[threshold] = made
                figures[f"agreement_with_float_at_{threshold}"] = round(
                    agreement(made, reference[threshold]), 5
                )
                figures[f"agreement_with_exact_at_{threshold}"] = round(
                    agreement(made, exact_decisions[threshold]), 5
                )
                figures[f"hits_at_{threshold}"] = sum(m is not None for m in made)
            run["codecs"][codec] = figures
            print(f"seed {seed} {codec:>5}: {figures}")
        runs.append(run)
    summary: dict[str, Any] = {}
    for codec in CODECS:
        for key in runs[0]["codecs"][codec]:
            values = [run["codecs"][codec][key] for run in runs]
            summary.setdefault(codec, {})[key] = {
                "mean": round(statistics.fmean(values), 5),
                "min": min(values),
                "max": max(values),
            }
    write_results("compression", {"parameters": vars(args), "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
