"""RAG workload: does the cache tell the question from its documents?

Built from QQP pairs (seeded sample of ``--pairs``, duplicates and not, as labelled). Pairs
are put in groups of ``--group`` that share one set of documents (made of other QQP
questions, like retrieved passages); each prompt is the pair's question wrapped in its
group's documents, in one of the default RAG layouts (rotating). Each q1 is stored with a
unique response (``POST /v1/entries``); then each q2 is looked up (``cache: only``) twice:

- over the *same* documents: a hit is correct only when it returns the pair's own entry and
  the pair is labelled duplicate;
- over *differing* documents (another group's): every hit is wrong (other documents, other
  answer).

Reported per mode, normalisation on (question embedded, documents in the scope) and off
(the whole prompt embedded): hit rate, precision and recall (correct hits / the
same-document duplicate lookups that had a right answer to find). Writes
bench/results/rag.json.

    python bench/rag.py [--pairs 1000] [--group 10] [--seed 3]
"""

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, distinct_questions, qqp_pairs, write_results

LAYOUTS: list[Callable[[str, str], str]] = [
    lambda q, d: f"Context:\n{d}\n\nQuestion: {q}",
    lambda q, d: f"<context>\n{d}\n</context>\nAnswer using only the context. {q}",
    lambda q, d: "".join(f"<document>{p}</document>\n" for p in d.split("\n")) + q,
    lambda q, d: f"```context\n{d}\n```\n{q}",
]


def workload(pairs: int, group: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sample = rng.sample(list(qqp_pairs()), pairs)
    passages = distinct_questions(pairs // group * 6 + 12, seed=seed + 1, skip=50_000)
    documents = ["\n".join(passages[i * 6 : i * 6 + 6]) for i in range(pairs // group + 2)]
    return {"pairs": sample, "documents": documents, "group": group}


def run(load: dict[str, Any], normalise: bool) -> dict[str, Any]:
    pairs, documents, group = load["pairs"], load["documents"], load["group"]
    groups = len(documents) - 1

    def prompt(question: str, position: int, docs: int) -> str:
        return LAYOUTS[position % len(LAYOUTS)](question, documents[docs])

    owner: dict[str, int] = {}
    same = {"hits": 0, "correct": 0, "lookups": 0, "answerable": 0}
    other = {"hits": 0, "lookups": 0}
    started = time.perf_counter()
    with ServiceProcess(sim_latency_ms=0, log_level="error", rag_normalise=normalise) as svc:
        for start in range(0, len(pairs), 200):
            batch = [
                {"prompt": prompt(p["q1"], start + i, (start + i) // group),
                 "response": f"answer {start + i}"}
                for i, p in enumerate(pairs[start : start + 200])
            ]  # fmt: skip
            stored = svc.http.post("/v1/entries", json={"entries": batch})
            stored.raise_for_status()
            for i, entry in enumerate(stored.json()["entries"]):
                owner[entry["entry_id"]] = start + i
        for position, pair in enumerate(pairs):
            own_docs = position // group
            answer = svc.query(prompt(pair["q2"], position, own_docs), cache="only").json()
            same["lookups"] += 1
            same["answerable"] += bool(pair["duplicate"])
            if answer["status"] == "HIT":
                same["hits"] += 1
                right = owner.get(answer["entry_id"]) == position and pair["duplicate"]
                same["correct"] += bool(right)
            other_docs = (own_docs + 1 + position % (groups - 1)) % groups
            answer = svc.query(prompt(pair["q2"], position, other_docs), cache="only").json()
            other["lookups"] += 1
            other["hits"] += answer["status"] == "HIT"
    hits = same["hits"] + other["hits"]
    return {
        "normalise": normalise,
        "hit_rate": round(hits / (same["lookups"] + other["lookups"]), 4),
        "precision": round(same["correct"] / hits, 4) if hits else None,
        "recall": round(same["correct"] / same["answerable"], 4),
        "same_documents": {**same, "hit_rate": round(same["hits"] / same["lookups"], 4)},
        "differing_documents": {**other, "hit_rate": round(other["hits"] / other["lookups"], 4)},
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--group", type=int, default=10, help="pairs sharing one document set")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    load = workload(args.pairs, args.group, args.seed)
    results: dict[str, Any] = {"parameters": vars(args), "runs": []}
    for normalise in (True, False):
        figures = run(load, normalise)
        results["runs"].append(figures)
        print(
            f"normalisation {'on ' if normalise else 'off'}: hit rate {figures['hit_rate']:.1%}, "
            f"precision {figures['precision']}, recall {figures['recall']}, "
            f"hits over differing documents {figures['differing_documents']['hits']} "
            f"({figures['seconds']} s)"
        )
    write_results("rag", results)


if __name__ == "__main__":
    main()
