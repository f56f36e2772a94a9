"""A strict reader's adjudication of the hits the labels call wrong, read blind.

Quora's duplicate labels are noisy: many hits they call wrong serve an answer that would be a
correct and complete answer to the asked question. Near the labels' cap, reading those hits
is the way to show what a decision gains. Two steps:

    python bench/adjudicate.py pool [--seed 11] [--pair-model models/pair ...]
    python bench/adjudicate.py score [--read build/adjudication/read.txt]

``pool`` runs each pair model (and, for the first, the static threshold at its served
recall, on the same sample's own curve: the comparison at equal recall) through the HTTP API
as ``bench/quality.py`` does, on one QQP dev sample, and writes the hits the labels call
wrong, of every system together, shuffled and without saying which system served them, to
``build/adjudication/pool.txt`` (numbered "asked ⇒ stored" lines; the systems' hits are kept
apart in ``build/adjudication/key.json``, not for the reader). Pairs already read are left
out, so a new system adds only what it serves anew.

The reader writes one line per pool number to ``build/adjudication/read.txt``:
``<n> right|wrong|unsure`` (right: an answer to the stored question would be a correct and
complete answer to the asked one). ``score`` folds those verdicts into
``bench/results/adjudication_verdicts.json`` (keyed by a hash of the two questions: no data
text is committed) and writes each system's precision as a strict reader finds it to
``bench/results/adjudication.json``: a range, unsure hits counted wrong, then right.
"""

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATA, RESULTS, ServiceProcess, write_results
from bench.quality import STAGES, analyse, measure, sample
from training.pair_data import DuplicateClusters, normal_form, pairs_in, read_pairs

WORK = Path("build/adjudication")
VERDICTS = RESULTS / "adjudication_verdicts.json"
VERDICT_WORDS = {"right", "wrong", "unsure"}


def pair_key(asked: str, stored: str) -> str:
    """A served (asked, stored) pair's name in the verdicts: a hash, not the text."""
    joined = f"{normal_form(asked)}\n{normal_form(stored)}"
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def hits_of(asked: np.ndarray, stored: np.ndarray, hit: np.ndarray, right: np.ndarray,
            answerable: int) -> dict[str, Any]:  # fmt: skip
    """One system's hits on the sample: each pair's key and whether the labels call it right."""
    return {
        "answerable": answerable,
        "hits": [
            {"key": pair_key(a, s), "asked": a, "stored": s, "right_by_labels": bool(r)}
            for a, s, h, r in zip(asked, stored, hit, right, strict=True)
            if h
        ],
    }


def pool(models: list[Path], seed: int, pairs: int) -> None:
    dev = pairs_in(read_pairs(DATA / "qqp_open.jsonl"), "dev")
    clusters = DuplicateClusters(dev)
    chosen = sample(dev, pairs, seed)
    systems: dict[str, Any] = {}
    for model in models:
        service = ServiceProcess(
            sim_latency_ms=0, log_level="error", pair_model_dir=model.resolve(),
            **STAGES["pair_model"],
        )  # fmt: skip
        with service as svc:
            decision = svc.http.get("/readyz").json()["decision"]
            m = measure(svc, chosen, clusters)
        answerable = int(m["answerable"].sum())
        systems[f"pair model {model}"] = hits_of(
            m["asked"], m["served_question"], m["served_hit"], m["served_in_cluster"], answerable
        )
        if len(systems) == 1:
            run = analyse(m, float(decision["radius"]), float(decision["cut"]))
            threshold = run["static_at_served_recall"]["threshold"]
            systems[f"static at d2 < {threshold}"] = hits_of(
                m["asked"], m["nearest_question"], m["distance"] < threshold, m["in_cluster"],
                answerable,
            )  # fmt: skip
    read = _verdicts()
    to_read = {h["key"]: h for s in systems.values() for h in s["hits"]
               if not h["right_by_labels"] and h["key"] not in read}  # fmt: skip
    rows = sorted(to_read.values(), key=lambda h: h["key"])
    random.Random(seed).shuffle(rows)
    WORK.mkdir(parents=True, exist_ok=True)
    lines = [f"{n} | {h['asked']} ⇒ {h['stored']}" for n, h in enumerate(rows, 1)]
    (WORK / "pool.txt").write_text("\n".join(lines) + "\n")
    numbered = {str(n): h["key"] for n, h in enumerate(rows, 1)}
    key = {"seed": seed, "pairs": pairs, "systems": systems, "pool": numbered}
    (WORK / "key.json").write_text(json.dumps(key, indent=1))
    print(f"{len(rows)} hits to read in {WORK / 'pool.txt'} "
          f"({len(read)} already read; systems: {', '.join(systems)})")  # fmt: skip


def _verdicts() -> dict[str, str]:
    return json.loads(VERDICTS.read_text()) if VERDICTS.exists() else {}


def fold_in(read_file: Path, numbered: dict[str, str]) -> dict[str, str]:
    """The verdicts so far, with the reader's new ones (``<n> right|wrong|unsure`` lines)."""
    verdicts = _verdicts()
    for line in read_file.read_text().splitlines():
        if not line.strip():
            continue
        number, word = line.split()[:2]
        if word not in VERDICT_WORDS or number not in numbered:
            raise SystemExit(f"{read_file}: cannot read {line!r}")
        verdicts[numbered[number]] = word
    VERDICTS.write_text(json.dumps(dict(sorted(verdicts.items())), indent=0) + "\n")
    return verdicts


def strict_figures(system: dict[str, Any], verdicts: dict[str, str]) -> dict[str, Any]:
    hits = system["hits"]
    by_labels = sum(h["right_by_labels"] for h in hits)
    read = [verdicts.get(h["key"]) for h in hits if not h["right_by_labels"]]
    right, unsure = read.count("right"), read.count("unsure")
    unread = read.count(None)
    count = max(1, len(hits))
    # unsure hits counted wrong, then right
    strict = [(by_labels + right) / count, (by_labels + right + unsure) / count]
    return {
        "hits": len(hits),
        "recall_by_labels": round(by_labels / max(1, system["answerable"]), 4),
        "precision_by_labels": round(by_labels / count, 4),
        "label_wrong": len(read),
        "read_right": right,
        "read_unsure": unsure,
        "unread": unread,
        "strict_precision": [round(value, 4) for value in strict],
    }


def score(read_file: Path | None) -> None:
    key = json.loads((WORK / "key.json").read_text())
    verdicts = fold_in(read_file, key["pool"]) if read_file else _verdicts()
    systems = {name: strict_figures(s, verdicts) for name, s in key["systems"].items()}
    for name, figures in systems.items():
        print(f"{name}: {figures}")
    write_results("adjudication", {"qqp_dev_sample": {"seed": key["seed"], "pairs": key["pairs"]},
                                   "systems": systems})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pooling = commands.add_parser("pool")
    pooling.add_argument("--seed", type=int, default=11)
    pooling.add_argument("--pairs", type=int, default=2000)
    pooling.add_argument("--pair-model", type=Path, action="append")
    scoring = commands.add_parser("score")
    scoring.add_argument("--read", type=Path)
    args = parser.parse_args()
    if args.command == "pool":
        pool(args.pair_model or [Path("models/pair")], args.seed, args.pairs)
    else:
        score(args.read)


if __name__ == "__main__":
    main()
