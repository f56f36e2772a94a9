"""Audited hits on a stream of real questions: the live wrong-answer estimate against the
truth, an operator's bound held, and what the audits cost (``make audit-bench``).

The upstream answers by meaning (``tests/fake_upstream.MeaningUpstream``): every question
of one duplicate cluster of the data (``training/pair_data.DuplicateClusters``) gets the
same answer, reworded at random from a few templates (so an exact comparison is not
enough); different clusters get different answers (three words drawn for the cluster from
the data's vocabulary). The stream: ``--queries`` questions drawn from the QQP dev split's
clusters with Zipf-like popularity (each draw a random member of its cluster), through the
HTTP API of one replica. A semantic HIT is truly wrong when the question it served is not in
the asked one's cluster (the protocol of ``bench/quality.py``).

Runs on the same stream: the static threshold and the pair model without a bound (their
true wrong rate; the estimate from ``--audit-rate`` audits, sampled every 1,000 queries),
bounds of 5 % and 2 %, bounds set to the static threshold's and the pair model's own true
wrong rate on the stream, and to half the pair model's (how many of its semantic HITs do
they serve, and is the second half's true rate under the bound?). A second stream from
STS-B's dev split (out of the training domain). A third, the QQP stream again with answers
that carry their question's topic (its words restated, then the cluster's words), every HIT
audited: where the answer check is hard. Also measured: the equivalence check's error both
ways, on rewordings of one answer and on the answers of different clusters, and, per run,
on the semantic HITs it served (``answer_check_on_served``). Writes bench/results/audit.json
and audit.png (``--sets``: only some streams, e.g. one per process).

    python bench/audit.py [--queries 20000] [--audit-rate 0.1] [--sets qqp,stsb,qqp_topic]
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
from index.embedding.embedder import load_embedder
from service.engine.audits import check_error, same_answer
from service.settings import Settings
from tests.fake_upstream import MeaningUpstream
from training.pair_data import DuplicateClusters, Pair, pairs_in, read_pairs, read_stsb

TEMPLATES = (
    "The answer involves {a}, {b} and {c}.",
    "It comes down to {a}, {b} and {c}.",
    "{a}, {b} and {c}: that is the answer here.",
    "In short: {a}, {b}, and also {c}.",
)
# answers that carry their question's topic: its words restated, then the cluster's
TOPIC_TEMPLATES = (
    "{topic}? The answer involves {a}, {b} and {c}.",
    "As for {topic}: it comes down to {a}, {b} and {c}.",
    "{a}, {b} and {c}: that is the answer to {topic}.",
    "On {topic}, in short: {a}, {b}, and also {c}.",
)
ZIPF_S = 1.1
SAMPLE_EVERY = 1000


class Stream:
    """Questions of a set's clusters, their answers, and a Zipf-like draw over them."""

    def __init__(self, pairs: list[Pair], seed: int, topical: bool = False) -> None:
        self.topical = topical
        self.clusters = DuplicateClusters(pairs)
        members: dict[str, list[str]] = {}
        for pair in pairs:
            for question in (pair.q1, pair.q2):
                members.setdefault(self.clusters.of(question), []).append(question)
        self.members = {c: list(dict.fromkeys(qs)) for c, qs in members.items()}
        rng = random.Random(seed)
        vocabulary = sorted({w.strip("?,.!").lower() for qs in self.members.values()
                             for q in qs for w in q.split() if len(w) > 5})  # fmt: skip
        self.answer_words = {c: rng.sample(vocabulary, 3) for c in sorted(self.members)}
        order = sorted(self.members)
        rng.shuffle(order)
        self.order = order
        weights = np.array([1 / (rank + 1) ** ZIPF_S for rank in range(len(order))])
        self.weights = weights / weights.sum()

    def answers(self, question: str) -> list[str]:
        a, b, c = self.answer_words.get(self.clusters.of(question), ("nothing", "known", "here"))
        if self.topical:
            topic = question.strip().rstrip("?").strip()
            return [t.format(topic=topic, a=a, b=b, c=c) for t in TOPIC_TEMPLATES]
        return [t.format(a=a, b=b, c=c) for t in TEMPLATES]

    def draw(self, count: int, seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(self.order), size=count, p=self.weights)
        chooser = random.Random(seed)
        return [chooser.choice(self.members[self.order[i]]) for i in picks]


def run(stream: Stream, questions: list[str], upstream: MeaningUpstream, embed: Any,
        **settings: Any) -> dict[str, Any]:  # fmt: skip
    """The stream through one replica: truth, estimate over time, hits and cost, and how
    the answer check does on the semantic HITs it served."""
    service = ServiceProcess(
        sim_latency_ms=0, log_level="error", llm="openai", openai_base_url=upstream.base_url,
        openai_api_key="sk-bench", openai_model="meaning", llm_max_retries=0,
        audit_max_per_s=1000, **settings,
    )  # fmt: skip
    semantic = wrong = hits = 0
    timeline, hit_ms = [], []
    served: list[tuple[str, str, bool]] = []
    with service as svc:
        for position, question in enumerate(questions, 1):
            answer = svc.query(question).json()
            if answer["status"] == "HIT":
                hits += 1
                if (answer["distance"] or 0) > 0:
                    semantic += 1
                    hit_ms.append(answer["latency_ms"])
                    truly_wrong = not stream.clusters.same(answer["matched_prompt"], question)
                    wrong += truly_wrong
                    served.append((answer["matched_prompt"], question, truly_wrong))
            if position % SAMPLE_EVERY == 0 or position == len(questions):
                estimated = svc.http.get("/v1/stats").json()["wrong_answer_rate"]
                timeline.append({
                    "queries": position, "semantic_hits": semantic,
                    "true_wrong_rate": round(wrong / max(1, semantic), 4),
                    "estimate": estimated["estimate"], "low": estimated["low"],
                    "high": estimated["high"], "audits": estimated["audits"],
                    "observed": estimated.get("observed"),
                })  # fmt: skip
        final = svc.http.get("/v1/stats").json()
    half = len(questions) // 2
    return {
        "settings": settings,
        "queries": len(questions),
        "hit_rate": round(hits / len(questions), 4),
        "semantic_hits": semantic,
        "true_wrong_rate": round(wrong / max(1, semantic), 4),
        "timeline": timeline,
        "second_half_true_wrong_rate": _second_half(timeline, half),
        "hits": hits,
        "audits": final["wrong_answer_rate"]["audits"],
        "bound_evidence": final["wrong_answer_rate"]["bound_evidence"],
        "audit_cost_usd": final["wrong_answer_rate"]["cost_usd"],
        "llm_calls_for_misses": final["misses"],
        "semantic_hit_latency_ms": percentiles(hit_ms) if hit_ms else None,
        "answer_check_on_served": served_pair_error(stream, embed, 0.8, served),
    }


def _second_half(timeline: list[dict[str, Any]], half: int) -> float | None:
    """The true wrong rate of the semantic HITs of the stream's second half."""
    before = next((t for t in timeline if t["queries"] >= half), None)
    end = timeline[-1]
    if before is None:
        return None
    hits = end["semantic_hits"] - before["semantic_hits"]
    wrong = (end["true_wrong_rate"] * end["semantic_hits"]
             - before["true_wrong_rate"] * before["semantic_hits"])  # fmt: skip
    return round(wrong / hits, 4) if hits > 0 else None


def equivalence_error(stream: Stream, embed: Any, cut: float, count: int = 500) -> dict[str, Any]:
    """How often the answer check errs: rewordings of one answer called different, and the
    answers of two different clusters called the same."""
    rng = random.Random(5)
    clusters = rng.sample(sorted(stream.members), min(count, len(stream.members)))
    same = [rng.sample(stream.answers(stream.members[c][0]), 2) for c in clusters]
    other = [(stream.answers(stream.members[a][0])[0], stream.answers(stream.members[b][0])[1])
             for a, b in zip(clusters, clusters[1:] + clusters[:1], strict=True)]  # fmt: skip

    def agrees(pairs: list[Any]) -> list[bool]:
        vectors = embed([t for pair in pairs for t in pair])
        return [same_answer(a, b, vectors[2 * i], vectors[2 * i + 1], cut)
                for i, (a, b) in enumerate(pairs)]  # fmt: skip

    false_different = 1 - float(np.mean(agrees(same)))
    false_same = float(np.mean(agrees(other)))
    return {
        "cut": cut,
        "pairs": len(same),
        "equivalent_called_different": round(false_different, 4),
        "different_called_equivalent": round(false_same, 4),
    }


def served_pair_error(
    stream: Stream, embed: Any, cut: float, served: list[tuple[str, str, bool]], seed: int = 7
) -> dict[str, Any]:
    """How often the answer check errs on the semantic HITs a run served (stored question,
    asked question, truly wrong), each answered as the stream's upstream answers them (one
    wording drawn for each): as an audit of every one of them would compare them."""
    rng = random.Random(seed)
    texts = [(rng.choice(stream.answers(stored)), rng.choice(stream.answers(asked)))
             for stored, asked, _ in served]  # fmt: skip
    found = embed([t for pair in texts for t in pair]) if texts else []
    same = [same_answer(a, b, found[2 * i], found[2 * i + 1], cut)
            for i, (a, b) in enumerate(texts)]  # fmt: skip
    wrong = [truly_wrong for _, _, truly_wrong in served]
    wrong_count = sum(wrong)
    return {
        "cut": cut,
        "served": len(served),
        "truly_wrong": wrong_count,
        "different_called_equivalent": round(
            sum(s and w for s, w in zip(same, wrong, strict=True)) / max(1, wrong_count), 4
        ),
        "equivalent_called_different": round(
            sum(not s and not w for s, w in zip(same, wrong, strict=True))
            / max(1, len(wrong) - wrong_count),
            4,
        ),
        "observed_wrong_rate": round(sum(not s for s in same) / max(1, len(same)), 4),
        "true_wrong_rate": round(wrong_count / max(1, len(wrong)), 4),
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    for name, outcome in results["qqp"].items():
        line = outcome["timeline"]
        xs = [t["queries"] for t in line]
        axis.plot(xs, [t["true_wrong_rate"] for t in line], label=f"{name}: true")
        if any(t["estimate"] is not None for t in line):
            axis.plot(xs, [t["estimate"] or 0 for t in line], "--", label=f"{name}: estimate")
            axis.fill_between(xs, [t["low"] for t in line], [t["high"] for t in line], alpha=0.1)
    axis.set_xlabel("queries")
    axis.set_ylabel("wrong-answer rate of served semantic HITs")
    axis.set_title("Audited estimate against the truth (QQP dev stream)")
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--audit-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--runs", default="", help="only these runs (comma-separated)")
    parser.add_argument("--name", default="audit", help="bench/results/<name>.json")
    parser.add_argument("--sets", default="qqp,stsb,qqp_topic", help="only these streams")
    args = parser.parse_args()
    qqp = Stream(pairs_in(read_pairs(DATA / "qqp_open.jsonl"), "dev"), args.seed)
    stsb = Stream(read_stsb(DATA / "stsb_train_dev.jsonl", "dev"), args.seed)
    embedder = load_embedder("onnx", None, None, "models/onnx")
    topical = Stream(pairs_in(read_pairs(DATA / "qqp_open.jsonl"), "dev"), args.seed, True)
    results: dict[str, Any] = {
        "parameters": vars(args),
        "equivalence_check": equivalence_error(qqp, embedder.encode, 0.8),
        "check_error_corrected_for": vars(check_error(Settings())),
        "qqp": {}, "stsb": {}, "qqp_topic": {},
    }  # fmt: skip
    print(results["equivalence_check"], flush=True)
    runs: dict[str, dict[str, Any]] = {
        "static": {"pair_model": "off", "audit_rate": args.audit_rate},
        "pair_model": {"pair_model": "on", "audit_rate": args.audit_rate},
        "static_bound_5pct": {"pair_model": "off", "audit_rate": args.audit_rate,
                              "max_wrong_rate": 0.05},
        "static_bound_2pct": {"pair_model": "off", "audit_rate": args.audit_rate,
                              "max_wrong_rate": 0.02},
        # bounds at a peer's own true wrong rate on this stream (from its run above)
        "static_bound_at_static": {"pair_model": "off", "audit_rate": args.audit_rate,
                                   "max_wrong_rate": "static"},
        "pair_bound_at_pair": {"pair_model": "on", "audit_rate": args.audit_rate,
                               "max_wrong_rate": "pair_model"},
        "pair_bound_at_half_pair": {"pair_model": "on", "audit_rate": args.audit_rate,
                                    "max_wrong_rate": "pair_model/2"},
        # every HIT audited: the estimate against the truth where the answer check is hard
        "pair_model_every_hit": {"pair_model": "on", "audit_rate": 1.0},
    }  # fmt: skip
    chosen = set(args.runs.split(",")) if args.runs else set(runs)
    default_bounds = ["pair_model", "pair_bound_at_pair", "pair_bound_at_half_pair"]
    for set_name, stream, names in (
        ("qqp", qqp, [n for n in runs if n != "pair_model_every_hit"]),
        ("stsb", stsb, ["static", "static_bound_5pct", "static_bound_at_static",
                        *default_bounds]),
        ("qqp_topic", topical, ["pair_model_every_hit"]),
    ):  # fmt: skip
        names = [name for name in names if name in chosen and set_name in args.sets.split(",")]
        if not names:
            continue
        questions = stream.draw(args.queries, args.seed)
        upstream = MeaningUpstream(stream.answers)
        upstream.start()
        try:
            for name in names:
                started = time.perf_counter()
                settings = dict(runs[name])
                peer = settings.get("max_wrong_rate")
                if isinstance(peer, str):  # a peer's rate (or half): its run must come first
                    peer_name, _, half = peer.partition("/")
                    if peer_name not in results[set_name]:
                        continue
                    rate = results[set_name][peer_name]["true_wrong_rate"]
                    settings["max_wrong_rate"] = max(0.001, rate / (2 if half else 1))
                outcome = run(stream, questions, upstream, embedder.encode, **settings)
                results[set_name][name] = outcome
                last = outcome["second_half_true_wrong_rate"]
                print(f"{set_name} {name}: hit rate {outcome['hit_rate']}, true wrong "
                      f"{outcome['true_wrong_rate']} (2nd half {last}), "
                      f"estimate {outcome['timeline'][-1]['estimate']} "
                      f"[{outcome['timeline'][-1]['low']}, {outcome['timeline'][-1]['high']}] "
                      f"from {outcome['audits']} audits [{time.perf_counter() - started:.0f} s]",
                      flush=True)  # fmt: skip
        finally:
            upstream.stop()
    write_results(args.name, results)
    plot(results, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
