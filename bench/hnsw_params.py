"""HNSW build and search parameters over real question embeddings: time against agreement.

The index holds the embeddings of every distinct QQP question but 6,000 held out (3,000
second questions of duplicate pairs, 3,000 others); each held-out question is searched
(one thread, as a replica searches) in FAISS HNSW with fp16 vectors (the shipped codec,
M 32) at several efConstruction / efSearch, and its nearest compared with exact search's.
What matters to a cache is the candidates inside the decision radius (the pair model's):
how many of those get another nearest than exact search gives. Also the build time.
Writes bench/results/hnsw_params.json.   python bench/hnsw_params.py
"""

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import all_questions, qqp_pairs, qqp_vectors, write_results
from index.vectors.sub_index import IndexShape, hnsw_index

HELD_OUT = 3000
SHAPES = ((40, (128, 64)), (80, (64, 48)), (120, (48, 32)))  # efConstruction, efSearch
RADIUS = json.loads(Path("models/pair/pair_model.json").read_text())["radius"]


def held_out(questions: list[str]) -> list[int]:
    position = {question: i for i, question in enumerate(questions)}
    rng = random.Random(17)
    duplicates = [p for p in qqp_pairs() if p["duplicate"]]
    rng.shuffle(duplicates)
    chosen: dict[int, None] = {}
    for pair in duplicates:
        first, second = pair["q1"].strip(), pair["q2"].strip()
        if first and second and first != second and len(chosen) < HELD_OUT:
            chosen.setdefault(position[second], None)
    others = [i for i in rng.sample(range(len(questions)), 2 * HELD_OUT) if i not in chosen]
    return [*chosen, *others[:HELD_OUT]]


def main() -> None:
    questions = sorted(all_questions())
    vectors = qqp_vectors(questions)
    queries_at = held_out(questions)
    kept = np.ones(len(questions), dtype=bool)
    kept[queries_at] = False
    base = np.ascontiguousarray(vectors[kept])
    queries = np.ascontiguousarray(vectors[queries_at])
    exact = faiss.IndexFlatL2(base.shape[1])
    exact.add(base)
    distances, nearest = exact.search(queries, 1)
    inside = distances[:, 0] <= RADIUS
    results: dict[str, Any] = {
        "entries": len(base), "queries": len(queries), "inside_radius": int(inside.sum()),
        "radius": RADIUS, "codec": "fp16", "m": 32, "runs": [],
    }  # fmt: skip
    faiss.omp_set_num_threads(1)
    for construction, searches in SHAPES:
        # the replica's own builder (trained on the vectors, as a rebuild does)
        graph = hnsw_index(base.shape[1], IndexShape(codec="fp16", hnsw_m=32,
                           hnsw_ef_construction=construction), base)  # fmt: skip
        started = time.perf_counter()
        graph.add(base)
        build_s = time.perf_counter() - started
        for ef in searches:
            graph.hnsw.efSearch = ef  # type: ignore[attr-defined]
            took, found = [], np.empty(len(queries), dtype=np.int64)
            for i in range(len(queries)):
                started = time.perf_counter()
                _, ids = graph.search(queries[i : i + 1], 4)
                took.append((time.perf_counter() - started) * 1000)
                found[i] = ids[0, 0]
            differ = found != nearest[:, 0]
            run = {
                "ef_construction": construction, "ef_search": ef, "build_s": round(build_s, 1),
                "search_p50_ms": round(statistics.median(took), 3),
                "nearest_differs": int(differ.sum()),
                "nearest_differs_inside_radius": int((differ & inside).sum()),
            }  # fmt: skip
            results["runs"].append(run)
            print(run, flush=True)
    write_results("hnsw_params", results)


if __name__ == "__main__":
    main()
