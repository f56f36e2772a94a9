"""Real LLM prompts, edited: does the cache serve a stored prompt's answer to an edit that
changes the answer (it must not), and to one that does not (it should)?

Builds ``--per-bucket`` prompts in each length bucket (< 64, 64-256, 256-1k, > 1k tokens by
the embedder's tokenizer) from public instruction data and stdlib code
(``bench/prompt_sources.py`` says what and how to get it: nothing is committed); some are
stored dressed (an instruction, a constraint, a greeting, a framing or a long preamble added,
``bench/prompt_variants.py``). Each decision stage (``--stages``: ``default``, as shipped,
and ``static``, the threshold alone) runs in its own replica with its own Redis: every prompt
is stored through ``POST /v1/entries``, then every variant of every kind is asked through
``POST /v1/query`` with ``cache: only`` (a MISS never calls the LLM), in a shuffled order,
one at a time. Recorded per lookup: served (HIT) or not, whether the entry served is the
prompt's own, the ``refused_by`` field when the response has one, and the latency (the
replica's ``latency_ms`` and the client's round trip).

Reported per kind: the share served with a 95% Wilson interval, by length bucket of the
stored prompt, and by phrasing split (``tune``: phrasings a decision may be written against;
``held_out``: fresh ones); lookup latency p50/p99 by length bucket; exact repeats (should be
served) and distinct prompts that were never stored (must never be served) as controls.
``--lookalikes`` adds the Quora-style look-alike pairs of ``bench/lookalikes.py``.
Writes bench/results/real_prompts.json.

    python bench/real_prompts.py [--quick] [--per-bucket 80] [--stages default,static]
                                 [--lookalikes] [--mirrors /work/.mirror]
"""

import argparse
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import lookalikes as looks
from bench.common import DATA, ServiceProcess, percentiles, write_results
from bench.latency import LeanClient
from bench.prompt_sources import BUCKETS, MIRRORS, Lengths, Task, tasks
from bench.prompt_variants import DRESSINGS, SPLITS, Kind, Split, kinds
from training.pair_protocol import wilson_bounds

STAGES: dict[str, dict[str, Any]] = {
    "default": {},  # as shipped
    "static": {"pair_model": "off", "verifier": "off"},
}
CONTROLS = ("exact_repeat", "distinct")


@dataclass(frozen=True)
class Stored:
    text: str
    bucket: str
    dressing: str | None
    split: Split  # of the dressing's phrasing


@dataclass(frozen=True)
class Ask:
    text: str
    kind: str
    group: str  # must_not_serve, should_serve, or control
    split: Split | None
    phrasing: str
    stored: int | None  # the position of the stored prompt it was made from
    bucket: str


def build(
    candidates: Sequence[Task], per_bucket: int, distinct: int, seed: int, lengths: Lengths
) -> tuple[list[Stored], list[Ask], list[Kind]]:
    """The stored prompts (``per_bucket`` in each bucket, dressed in turn), and what is
    asked: every kind that applies to each, the exact repeat, and ``distinct`` prompts per
    bucket that are never stored."""
    rng = random.Random(seed)
    dressings: list[str | None] = [None, *DRESSINGS]
    stored: list[Stored] = []
    counts = dict.fromkeys(BUCKETS, 0)
    turns = dict.fromkeys(BUCKETS, 0)  # dressings tried, by the undressed prompt's bucket
    unused: list[Task] = []
    for task in candidates:
        raw = lengths.bucket(task.text)
        if counts[raw] >= per_bucket:
            unused.append(task)
            continue
        dressing = dressings[turns[raw] % len(dressings)]
        split = SPLITS[(turns[raw] // len(dressings)) % 2]
        turns[raw] += 1
        text = DRESSINGS[dressing](task.text, rng, split).text if dressing else task.text
        bucket = lengths.bucket(text)
        if counts[bucket] >= per_bucket:
            unused.append(task)
            continue
        counts[bucket] += 1
        stored.append(Stored(text, bucket, dressing, split))
    short = [b for b, n in counts.items() if n < per_bucket]
    if short:
        print(f"buckets short of {per_bucket} prompts: {[(b, counts[b]) for b in short]}")
    # the shared template's other tasks and the distinct controls: prompts never stored
    by_bucket: dict[str, list[Task]] = {b: [] for b in BUCKETS}
    for task in unused:
        by_bucket[lengths.bucket(task.text)].append(task)
    controls = [t for b in BUCKETS for t in by_bucket[b][:distinct]]
    others = [t.text for b in BUCKETS for t in by_bucket[b][distinct : distinct + 40]]
    every_kind = kinds(others)
    asks: list[Ask] = []
    for position, prompt in enumerate(stored):
        asks.append(Ask(prompt.text, "exact_repeat", "control", None, "", position, prompt.bucket))
        for number, kind in enumerate(every_kind):
            if kind.needs is not None and kind.needs != prompt.dressing:
                continue
            split = SPLITS[(position + number) % 2]
            variant = kind.make(prompt.text, rng, split)
            if variant is None or variant.text == prompt.text:
                continue
            asks.append(Ask(variant.text, kind.name, kind.group, variant.split,
                            variant.phrasing, position, prompt.bucket))  # fmt: skip
    for task in controls:
        asks.append(Ask(task.text, "distinct", "control", None, task.source, None,
                        lengths.bucket(task.text)))  # fmt: skip
    return stored, asks, every_kind


@dataclass(frozen=True)
class Answer:
    served: bool
    own: bool  # the entry served is the one the asked prompt was made from
    refused_by: str | None
    server_ms: float
    client_ms: float


def ask_all(svc: ServiceProcess, stored: Sequence[Stored], asks: Sequence[Ask],
            seed: int) -> list[Answer]:  # fmt: skip
    """Store every prompt, then ask every variant (``cache: only``), in a seeded order."""
    ids = svc.store([{"prompt": p.text, "response": f"answer {i}"} for i, p in enumerate(stored)],
                    batch=100)  # fmt: skip
    order = list(range(len(asks)))
    random.Random(seed).shuffle(order)
    client = LeanClient(svc.port)
    client.post("/v1/query", {"prompt": "a warm-up question?", "cache": "only"})
    answers: dict[int, Answer] = {}
    for position in order:
        ask = asks[position]
        started = time.perf_counter()
        status, body, _ = client.post("/v1/query", {"prompt": ask.text, "cache": "only"})
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise RuntimeError(f"{status}: {body}")
        served = body["status"] == "HIT"
        own = served and ask.stored is not None and body["entry_id"] == ids[ask.stored]
        answers[position] = Answer(served, own, body.get("refused_by"), body["latency_ms"],
                                   elapsed)  # fmt: skip
    client.close()
    return [answers[i] for i in range(len(asks))]


def share(served: Iterable[bool]) -> dict[str, Any]:
    flags = list(served)
    hits = sum(flags)
    low, high = wilson_bounds(hits, len(flags))
    return {
        "n": len(flags),
        "served": hits,
        "share": round(hits / len(flags), 4) if flags else None,
        "wilson95": [round(low, 4), round(high, 4)],
    }


def kind_figures(pairs: Sequence[tuple[Ask, Answer]]) -> dict[str, Any]:
    figures = share(a.served for _, a in pairs)
    figures["by_bucket"] = {b: share(a.served for q, a in pairs if q.bucket == b)
                            for b in BUCKETS if any(q.bucket == b for q, _ in pairs)}  # fmt: skip
    splits = {s: [a.served for q, a in pairs if q.split == s] for s in SPLITS}
    if any(splits.values()):
        figures["by_split"] = {s: share(v) for s, v in splits.items() if v}
    refused = [a.refused_by for _, a in pairs if a.refused_by]
    if refused:
        figures["refused_by"] = {r: refused.count(r) for r in sorted(set(refused))}
    return figures


def _latencies(samples: list[float]) -> dict[str, float] | None:
    return percentiles(samples) if samples else None


def analyse(asks: Sequence[Ask], answers: Sequence[Answer], every_kind: Sequence[Kind]
            ) -> dict[str, Any]:  # fmt: skip
    pairs = list(zip(asks, answers, strict=True))
    names = [k.name for k in every_kind] + list(CONTROLS)
    result: dict[str, Any] = {"kinds": {}}
    for name in names:
        chosen = [(q, a) for q, a in pairs if q.kind == name]
        if not chosen:
            continue
        figures = {"group": chosen[0][0].group, **kind_figures(chosen)}
        if name != "distinct":
            figures["served_own_entry"] = sum(a.own for _, a in chosen)
        result["kinds"][name] = figures
    result["latency_ms"] = {
        bucket: {
            "server": percentiles([a.server_ms for q, a in pairs if q.bucket == bucket]),
            "client": percentiles([a.client_ms for q, a in pairs if q.bucket == bucket]),
            "server_hits": _latencies(
                [a.server_ms for q, a in pairs if q.bucket == bucket and a.served]
            ),
            "server_misses": _latencies(
                [a.server_ms for q, a in pairs if q.bucket == bucket and not a.served]
            ),
        }
        for bucket in BUCKETS
        if any(q.bucket == bucket for q in asks)
    }
    result["refused_by_field"] = any(a.refused_by for a in answers)
    return result


def run_lookalikes(svc: ServiceProcess, set_: looks.LookalikeSet, seed: int) -> dict[str, Any]:
    svc.http.delete("/v1/namespaces/default").raise_for_status()
    stored = [Stored(q, "", None, "tune") for q in set_.stored]
    asks = [Ask(p.asked, p.kind, "should_serve" if p.serve else "must_not_serve", p.split,
                p.phrasing, set_.stored.index(p.stored), "") for p in set_.pairs]  # fmt: skip
    answers = ask_all(svc, stored, asks, seed)
    pairs = list(zip(asks, answers, strict=True))
    result: dict[str, Any] = {"kinds": {}}
    for kind in dict.fromkeys(q.kind for q in asks):
        chosen = [(q, a) for q, a in pairs if q.kind == kind]
        figures = kind_figures(chosen)
        figures.pop("by_bucket", None)
        result["kinds"][kind] = {"group": chosen[0][0].group, **figures}
    result["must_not_serve"] = share(a.served for q, a in pairs if q.group == "must_not_serve")
    result["must_not_serve_by_split"] = {
        s: share(a.served for q, a in pairs if q.group == "must_not_serve" and q.split == s)
        for s in SPLITS
    }
    result["should_serve"] = share(a.served for q, a in pairs if q.group == "should_serve")
    result["should_serve_right_entry"] = share(a.own for q, a in pairs if q.group == "should_serve")
    return result


def table(stages: dict[str, Any]) -> None:
    names = list(next(iter(stages.values()))["real_prompts"]["kinds"])
    print(f"{'kind':22}" + "".join(f"{s:>22}" for s in stages))
    for name in names:
        cells = []
        for figures in stages.values():
            k = figures["real_prompts"]["kinds"].get(name)
            cells.append(f"{k['share']:.3f} ({k['served']}/{k['n']})" if k else "-")
        print(f"{name:22}" + "".join(f"{c:>22}" for c in cells))
    for stage, figures in stages.items():
        lat = figures["real_prompts"]["latency_ms"]
        print(
            stage,
            "latency p50/p99 ms:",
            {b: (v["server"]["p50_ms"], v["server"]["p99_ms"]) for b, v in lat.items()},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-bucket", type=int, default=80, help="stored prompts a bucket")
    parser.add_argument("--distinct", type=int, default=30, help="never-stored prompts a bucket")
    parser.add_argument("--quick", action="store_true", help="a smaller sitting (24 a bucket)")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--lookalikes", action="store_true", help="also the look-alike pairs")
    parser.add_argument("--lookalike-count", type=int, default=100, help="pairs a kind")
    parser.add_argument("--mirrors", type=Path, default=MIRRORS,
                        help="folder of <owner>+<name>/repo snapshots")  # fmt: skip
    parser.add_argument("--seed", type=int, default=39)
    parser.add_argument("--out", default="real_prompts", help="bench/results/<out>.json")
    args = parser.parse_args()
    if args.quick:
        args.per_bucket, args.distinct, args.lookalike_count = 24, 10, 30
    started = time.perf_counter()
    load_before = os.getloadavg()
    lengths = Lengths()
    stored, asks, every_kind = build(tasks(args.mirrors, args.seed), args.per_bucket,
                                     args.distinct, args.seed, lengths)  # fmt: skip
    look_set = (looks.build(DATA / "qqp_open.jsonl", args.lookalike_count, args.seed)
                if args.lookalikes else None)  # fmt: skip
    print(f"{len(stored)} prompts stored, {len(asks)} asked"
          + (f"; {len(look_set.pairs)} look-alike pairs" if look_set else ""))  # fmt: skip
    stages: dict[str, Any] = {}
    for stage in args.stages.split(","):
        with ServiceProcess(sim_latency_ms=0, log_level="error", **STAGES[stage]) as svc:
            decision = svc.http.get("/readyz").json().get("decision")
            answers = ask_all(svc, stored, asks, args.seed)
            stages[stage] = {"decision": decision,
                             "real_prompts": analyse(asks, answers, every_kind)}  # fmt: skip
            if look_set is not None:
                stages[stage]["lookalikes"] = run_lookalikes(svc, look_set, args.seed)
        print(f"{stage}: done [{time.perf_counter() - started:.0f} s]")
    table(stages)
    write_results(args.out, {
        "parameters": {**vars(args), "mirrors": str(args.mirrors)},
        "stored_prompts": {b: sum(p.bucket == b for p in stored) for b in BUCKETS},
        "stored_dressings": {str(d): sum(p.dressing == d for p in stored)
                             for d in [None, *DRESSINGS]},
        "asked": len(asks),
        "lookalike_pairs": looks.counts(look_set) if look_set else None,
        "seconds": round(time.perf_counter() - started, 1),
        # the machine is shared: its load says how far the latencies are this replica's own
        "load_average_1_5_15": {"start": load_before, "end": os.getloadavg()},
        "stages": stages,
    })  # fmt: skip


if __name__ == "__main__":
    main()
