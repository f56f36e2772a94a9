"""Embedding backends side by side: parity with torch and encode speed, in one run.

* Cosine to torch over 200 varied texts (short, long, non-English, code, QQP questions).
* HIT/MISS agreement with torch at the default threshold over 2,000 QQP pairs.
* Encode time of one ~11-word query (p50 of 200), and of a batch of 64 (per text).

Writes bench/results/parity.json.   python bench/parity.py [--pairs 2000]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_results
from index.decision.distance import DEFAULT_THRESHOLD
from index.embedding.embedder import BACKENDS, load_embedder
from training.corpus import qqp_pairs, varied_texts

QUERY = "What is the best way to learn a new language as an adult?"


def timing(embedder: Any, texts: list[str]) -> dict[str, float]:
    embedder.encode([QUERY])
    singles = []
    for _ in range(200):
        started = time.perf_counter()
        embedder.encode([QUERY])
        singles.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    embedder.encode(texts[:64])
    batch_per_text = (time.perf_counter() - started) * 1000 / 64
    return {
        "single_query_p50_ms": round(statistics.median(singles), 3),
        "batch64_per_text_ms": round(batch_per_text, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    texts = varied_texts(200)
    pairs = qqp_pairs(args.pairs, seed=21)
    flat = [text for pair in pairs for text in pair]
    started = time.perf_counter()
    embedders = {backend: load_embedder(backend, None, None, "models/onnx") for backend in BACKENDS}
    reference_texts = embedders["torch"].encode(texts)
    reference_pairs = embedders["torch"].encode(flat)

    def hits(vectors: np.ndarray) -> np.ndarray:
        distances = ((vectors[0::2] - vectors[1::2]) ** 2).sum(axis=1)
        decided: np.ndarray = distances < DEFAULT_THRESHOLD
        return decided

    reference_hits = hits(reference_pairs)
    results: dict[str, Any] = {
        "texts": len(texts),
        "pairs": len(pairs),
        "threshold": DEFAULT_THRESHOLD,
        "backends": {},
    }
    for backend, embedder in embedders.items():
        cosines = (embedder.encode(texts) * reference_texts).sum(axis=1)
        agreement = float((hits(embedder.encode(flat)) == reference_hits).mean())
        figures = {
            "cosine_to_torch_mean": round(float(cosines.mean()), 5),
            "cosine_to_torch_min": round(float(cosines.min()), 5),
            "decision_agreement": round(agreement, 4),
            **timing(embedder, texts),
        }
        results["backends"][backend] = figures
        print(
            f"{backend:>9}: cos mean {figures['cosine_to_torch_mean']} min "
            f"{figures['cosine_to_torch_min']}, agreement {agreement:.2%}, one query "
            f"{figures['single_query_p50_ms']} ms, batch {figures['batch64_per_text_ms']} ms/text"
        )
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_results("parity", results)


if __name__ == "__main__":
    main()
