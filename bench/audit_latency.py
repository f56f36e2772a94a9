"""Does a HIT cost more with audits on? The same paraphrase HITs with audits off, at the
default share (``audit_rate`` 0.02) and on every semantic HIT (``audit_rate`` 1, no
per-second budget), in alternating rounds.

Each round starts a fresh replica (its own embedded Redis) with the default decision stage,
stores the q1 of ``--pairs`` QQP duplicate pairs (``POST /v1/entries``), then asks each q2
once over one keep-alive connection (``bench/latency.py``'s client); the latencies of the
semantic HITs (distance above 0: the ones an audit may draw) are kept. The simulated LLM
answers at once (``sim_latency_ms`` 0): an audit's call and its answer check run right
after the HIT they audit, the nearest they come to the next request (the worst case for
interference; a real upstream answers seconds later). The round ends when every audit
drawn has been counted. The settings take turns, each round starting with the next one
(off, default, every; then default, every, off; ...), because this machine's speed drifts
within minutes; the figures are medians over the rounds of each setting, with the ratio of
each p50 to audits off. Writes bench/results/audit_latency.json.

    python bench/audit_latency.py [--pairs 400] [--rounds 6]
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, percentiles, write_results
from bench.latency import LeanClient, timed
from training.corpus import DATA
from training.pair_data import read_pairs

SETTINGS: dict[str, dict[str, Any]] = {
    "off": {"audit_rate": 0},
    "default": {"audit_rate": 0.02},  # the default share, within the default budget
    "every": {"audit_rate": 1, "audit_max_per_s": 1000},
}


def duplicate_pairs(count: int, seed: int = 5) -> list[tuple[str, str]]:
    pairs = [(p.q1, p.q2) for p in read_pairs(DATA / "qqp_open.jsonl") if p.duplicate]
    return random.Random(seed).sample(pairs, count)


def audits_counted(service: ServiceProcess) -> int:
    stats = service.http.get("/v1/stats").json()
    namespace = stats["namespaces"].get("default", {})
    return int(namespace.get("wrong_answer_rate", {}).get("audits", 0))


def semantic_hits(
    service: ServiceProcess, pairs: list[tuple[str, str]]
) -> list[tuple[float, dict[str, Any]]]:
    """Store each q1, ask each q2 once: the semantic HITs' (latency ms, answer)."""
    service.store([{"prompt": q1, "response": f"answer {i}"} for i, (q1, _) in enumerate(pairs)])
    service.wait_settled()
    client = LeanClient(service.port)
    hits = []
    for _, q2 in pairs:
        elapsed, answer = timed(client, q2)
        if answer["status"] == "HIT" and (answer["distance"] or 0) > 0:
            hits.append((elapsed, answer))
    client.close()
    return hits


def rotated(names: list[str], round_number: int) -> list[str]:
    """The settings' order in a round: each round starts with the next one, so that no
    setting always runs first or last on a machine whose speed drifts."""
    shift = round_number % len(names)
    return names[shift:] + names[:shift]


def measure(service: ServiceProcess, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    hits = [elapsed for elapsed, _ in semantic_hits(service, pairs)]
    # the audits drawn are still under way: done when the count has not moved for 2 s (or
    # reached every HIT measured)
    deadline, audited, steady_since = time.monotonic() + 60, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - steady_since < 2:
        counted = audits_counted(service)
        if counted != audited:
            audited, steady_since = counted, time.monotonic()
        if audited >= len(hits):
            break
        time.sleep(0.2)
    return {"semantic_hit": percentiles(hits), "audits": audited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    pairs = duplicate_pairs(args.pairs)
    rounds: dict[str, list[dict[str, Any]]] = {setting: [] for setting in SETTINGS}
    names = list(SETTINGS)
    for round_number in range(args.rounds):
        for setting in rotated(names, round_number):
            overrides = SETTINGS[setting]
            with ServiceProcess(sim_latency_ms=0, pair_model="auto", **overrides) as service:
                figures = measure(service, pairs)
            rounds[setting].append(figures)
            print(f"round {round_number + 1}, audits {setting}: semantic HIT p50 "
                  f"{figures['semantic_hit']['p50_ms']:.2f} ms (n={figures['semantic_hit']['n']}), "
                  f"{figures['audits']} audits")  # fmt: skip

    def median_of(setting: str, figure: str) -> float:
        values = [r["semantic_hit"][figure] for r in rounds[setting]]
        return round(float(statistics.median(values)), 3)

    summary = {
        setting: {figure: median_of(setting, figure) for figure in ("p50_ms", "p99_ms")}
        for setting in SETTINGS
    }
    ratio = {
        setting: round(summary[setting]["p50_ms"] / summary["off"]["p50_ms"], 3)
        for setting in ("default", "every")
    }
    spread = {
        setting: [r["semantic_hit"]["p50_ms"] for r in rounds[setting]] for setting in SETTINGS
    }
    print(f"semantic HIT p50 by round: {spread}; medians {summary}, ratios to off {ratio}")
    write_results(
        "audit_latency",
        {"parameters": vars(args), "semantic_hit": summary, "ratio_to_off_p50": ratio,
         "semantic_hit_p50_by_round": spread, "rounds": rounds},
    )  # fmt: skip


if __name__ == "__main__":
    main()
