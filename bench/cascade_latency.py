"""What the cascade saves on a semantic HIT: the same paraphrase HITs with the static
threshold, with the pair model and its cascade (the default: candidates nearer than the
build's ``serve_below`` are served without running the model), and with the same model
judging every candidate (a copy of the build whose ``serve_below`` is 0).

As ``bench/audit_latency.py``: a fresh replica per round (its own embedded Redis), the q1
of ``--pairs`` QQP duplicate pairs stored, each q2 asked once over one keep-alive
connection; the semantic HITs' latencies kept; the settings take turns, each round starting
with the next one; medians over the rounds. Also the share of HITs the model judged
(``confidence`` not null). Writes bench/results/cascade_latency.json.

    python bench/cascade_latency.py [--pairs 400] [--rounds 6]
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.audit_latency import duplicate_pairs, rotated, semantic_hits
from bench.common import ServiceProcess, percentiles, write_results
from index.decision.pair_model import META_NAME

ROOT = Path(__file__).resolve().parents[1]


def measure(service: ServiceProcess, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    hits = semantic_hits(service, pairs)
    judged = sum(answer.get("confidence") is not None for _, answer in hits)
    return {
        "semantic_hit": percentiles([elapsed for elapsed, _ in hits]),
        "judged_share": round(judged / len(hits), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    pairs = duplicate_pairs(args.pairs)
    built = ROOT / "models" / "pair"
    with tempfile.TemporaryDirectory(prefix="dc-bench-cascade-") as folder:
        uncascaded = Path(folder) / "pair"
        shutil.copytree(built, uncascaded, ignore=shutil.ignore_patterns("torch"))
        meta = json.loads((uncascaded / META_NAME).read_text())
        (uncascaded / META_NAME).write_text(json.dumps({**meta, "serve_below": 0.0}))
        settings: dict[str, dict[str, Any]] = {
            "static": {"pair_model": "off"},
            "cascade": {"pair_model": "on"},
            "every_candidate": {"pair_model": "on", "pair_model_dir": str(uncascaded)},
        }
        names = list(settings)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for round_number in range(args.rounds):
            for name in rotated(names, round_number):
                with ServiceProcess(sim_latency_ms=0, **settings[name]) as service:
                    figures = measure(service, pairs)
                rounds[name].append(figures)
                hit = figures["semantic_hit"]
                print(f"round {round_number + 1}, {name}: semantic HIT p50 {hit['p50_ms']:.2f} "
                      f"ms (n={hit['n']}), judged {figures['judged_share']}")  # fmt: skip

    def median(name: str, figure: str) -> float:
        return round(float(statistics.median(r["semantic_hit"][figure] for r in rounds[name])), 3)

    summary = {
        name: {"p50_ms": median(name, "p50_ms"), "p99_ms": median(name, "p99_ms"),
               "judged_share": rounds[name][-1]["judged_share"],
               "hits": rounds[name][-1]["semantic_hit"]["n"]}
        for name in names
    }  # fmt: skip
    saved = round(summary["every_candidate"]["p50_ms"] - summary["cascade"]["p50_ms"], 3)
    # the target: a semantic HIT with the default decision costs at most 2 ms more at p50
    over_static = round(summary["cascade"]["p50_ms"] - summary["static"]["p50_ms"], 3)
    print(f"medians {summary}; the cascade saves {saved} ms p50; the default costs "
          f"{over_static} ms p50 over the static threshold")  # fmt: skip
    write_results("cascade_latency", {"parameters": vars(args), "summary": summary,
                                      "cascade_saves_p50_ms": saved,
                                      "default_over_static_p50_ms": over_static,
                                      "rounds": rounds})  # fmt: skip


if __name__ == "__main__":
    main()
