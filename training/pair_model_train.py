"""Train the pair model: a MiniLM cross-encoder that reads a query and a cached question
together and gives the probability that the cached answer is right for the query.

    python -m training.pair_model_train [--data DIR] [--out DIR] [--seed N]
    python -m training.pair_model_train --pairs MINE.jsonl --base models/pair

The first form trains from the packaged all-MiniLM-L6-v2 weights on the QQP train split
(``training/pair_data.py``: by question, disjoint from tune and dev) plus made-up traps
(swapped names and words, changed numbers, negations, antonyms: label 0) and rewordings
(label 1); it chooses its operating point on the tune split. The second fine-tunes a built
pair model on the user's own labelled pairs (``{"q1", "q2", "duplicate"}`` JSON lines), and
chooses the operating point on a question-disjoint part of them held out from training.

The operating point: candidates inside ``radius`` (squared L2 of the embedder's vectors) are
judged; one is served when the model gives it at least ``cut``. The cut is the one of best
precision on the tune pairs among those keeping recall at ``--min-recall`` (0.62 by
default, a margin over the 0.60 of the documented target) through the same lookup protocol
as ``bench/quality.py`` (store q1, look up q2, judge the nearest). It is never chosen on dev.

The artifact (a folder, written whole then renamed into place, so a running service never
reads half of one): ``model.onnx`` (fp32, or int8 when it serves as well on tune: precision
and recall within ``TOLERANCE``), ``tokenizer.json``, ``pair_model.json`` (operating point,
the cascade's ``serve_below``, figures on tune, provenance) and ``torch/`` (the weights,
for a later fine-tune). Needs the ``[train]`` extra (torch); serving reads only the ONNX
file.
"""

import argparse
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.decision.pair_model import META_NAME, TOKENIZER_NAME, PairModel, combined
from index.decision.spans import refused as refused_by_rule
from index.embedding.embedder import load_embedder, packaged_model_path
from training.onnx_export import export_bert_inputs
from training.pack_model import pack
from training.pair_artifact import data_digests, stamp
from training.pair_data import (
    DuplicateClusters,
    Pair,
    distinct_pairs,
    normal_form,
    pairs_in,
    read_pairs,
    read_stsb,
)
from training.pair_protocol import SAMPLE_PAIRS, Lookups, look_up_in_chunks
from training.verifier_train import hard_negatives, rewordings

log = logging.getLogger(__name__)

MAX_TOKENS = 64  # a pair of questions: QQP's are ~12 words each
BATCH = 32
MIN_RECALL = 0.62
TRAPS_PER_QUESTION = 1  # made-up hard negatives per sampled train question
TRAP_QUESTIONS = 5000
TUNE_SEED = 17  # the order of the tune pairs, before they are cut into samples
MAX_ROWS = 34_000  # the training budget: ~25 ms a row on 2 cores, ~14 minutes an epoch
# two passes over the rows: on dev, QQP as served within the spread of one pass, STS-B's
# recall +7 points at its precision, and +1.5 points at recall 0.65 (docs/hit-quality.md)
EPOCHS = 2.0
# --quick: a small build for the test suite (about a minute), which needs a pair model that
# exists and behaves, not the best one; marked in its meta, never put in force by "auto"
MINING_RADIUS = 0.7  # mined candidates: about the judged radius (0.66 in the last build)
MINED_ROWS = 12_000  # of the ~34,000 rows trained on, about a third
QUICK_ROWS, QUICK_TRAP_QUESTIONS, QUICK_TUNE_PAIRS = 2_000, 300, 1_200

Row = tuple[str, str, float]  # (a, b, label)


def mined_rows(pairs: Sequence[Pair], embed: Any, radius: float, limit: int) -> list[Row]:
    """Pairs as the cache meets them: each train question and its nearest other train
    question (searched among ``SAMPLE_PAIRS`` stored questions at a time, as a lookup meets
    them), when that lies inside ``radius``, labelled by the cluster rule; a seeded
    ``limit`` of them. Mostly near non-duplicates: the hard negatives QQP's given pairs hold
    few of (a q2's nearest stored question is nearly always its own q1)."""
    import faiss

    clusters = DuplicateClusters(pairs)
    questions = list(dict.fromkeys(" ".join(q.split()) for p in pairs for q in (p.q1, p.q2)))
    random.Random(TUNE_SEED).shuffle(questions)
    rows: list[Row] = []
    for start in range(0, len(questions), SAMPLE_PAIRS):
        chunk = questions[start : start + SAMPLE_PAIRS]
        vectors = np.asarray(embed(chunk), dtype=np.float32)
        index = faiss.IndexFlatL2(vectors.shape[1])
        index.add(vectors)
        distances, ids = index.search(vectors, 2)  # itself, then its nearest other
        for question, distance, other in zip(chunk, distances[:, 1], ids[:, 1], strict=True):
            if (
                other >= 0
                and distance < radius
                and normal_form(chunk[other]) != normal_form(question)
            ):
                rows.append((question, chunk[other], float(clusters.same(question, chunk[other]))))
    random.Random(TUNE_SEED).shuffle(rows)
    return rows[:limit]


def _examples(
    pairs: Sequence[Pair],
    rng: random.Random,
    traps: bool,
    quick: bool = False,
    mined: Sequence[Row] = (),
) -> list[Row]:
    """(a, b, label) rows: the pairs in a random order each, plus traps and rewordings;
    a random ``MAX_ROWS`` of them when there are more (QQP's train split gives ~45,000),
    less room for the ``mined`` rows, which are all kept."""
    rows = [(p.q1, p.q2, float(p.duplicate)) for p in pairs]
    trap_questions = QUICK_TRAP_QUESTIONS if quick else TRAP_QUESTIONS
    if traps:
        questions = list(dict.fromkeys(q for p in pairs for q in (p.q1, p.q2)))
        for question in rng.sample(questions, min(trap_questions, len(questions))):
            for variant in hard_negatives(question, rng)[:TRAPS_PER_QUESTION]:
                rows.append((question, variant, 0.0))
            for variant in rewordings(question)[:1]:
                rows.append((question, variant, 1.0))
    rng.shuffle(rows)
    rows = rows[: max(0, (QUICK_ROWS if quick else MAX_ROWS) - len(mined))] + list(mined)
    rows = [(b, a, y) if rng.random() < 0.5 else (a, b, y) for a, b, y in rows]
    rng.shuffle(rows)
    return rows


class _Scorer:
    """The torch model being trained: encoder, mean pooling, a linear head → one logit."""

    def __init__(self, base: Path, seed: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(seed)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(base))
        self.encoder = AutoModel.from_pretrained(str(base), attn_implementation="eager")
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
        head_file = base / "head.pt"
        if head_file.exists():
            self.head.load_state_dict(torch.load(head_file, weights_only=True))

    def parameters(self) -> list[Any]:
        return [*self.encoder.parameters(), *self.head.parameters()]

    def logits(self, a: Sequence[str], b: Sequence[str]) -> Any:
        batch = self.tokenizer(list(a), list(b), padding=True, truncation=True,
                               max_length=MAX_TOKENS, return_tensors="pt")  # fmt: skip
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        self.torch.save(self.head.state_dict(), folder / "head.pt")

    def export(self, onnx_path: Path) -> None:
        torch = self.torch
        encoder, head = self.encoder.eval(), self.head.eval()

        class PairLogit(torch.nn.Module):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.head = encoder, head

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                hidden = self.encoder(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return self.head(pooled).squeeze(-1)  # fmt: skip

        sample = self.tokenizer(["a question to trace", "short"], ["another one", "x"],
                                padding=True, return_tensors="pt")  # fmt: skip
        export_bert_inputs(PairLogit(), sample, onnx_path, "logit", {0: "batch"})


def _batches(rows: list[Row], rng: random.Random) -> list[list[Row]]:
    """Batches of rows of similar length, in a random order: padding to the longest of a
    batch of look-alike lengths wastes little (about twice the pairs/s of random batches)."""
    by_length = sorted(rows, key=lambda row: len(row[0]) + len(row[1]) + rng.random())
    batches = [by_length[i : i + BATCH] for i in range(0, len(by_length), BATCH)]
    rng.shuffle(batches)
    return batches


def fit(scorer: _Scorer, rows: list[Row], epochs: float, lr: float, seed: int) -> None:
    torch = scorer.torch
    rng = random.Random(seed)
    per_epoch = math.ceil(len(rows) / BATCH)
    steps = max(1, math.ceil(per_epoch * epochs))
    warmup = max(1, steps // 20)
    optimiser = torch.optim.AdamW(scorer.parameters(), lr=lr, weight_decay=0.01)

    def rate(step: int) -> float:  # linear warm-up, then linear decay to 0
        return min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    scorer.encoder.train()
    started, losses = time.perf_counter(), []
    batches: list[list[Row]] = []
    for step in range(steps):
        if not batches:
            batches = _batches(rows, rng)
        a, b, y = zip(*batches.pop(), strict=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            scorer.logits(a, b), torch.tensor(y)
        )
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(scorer.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - started
            left = elapsed / (step + 1) * (steps - step - 1)
            log.info("pair model: step %d/%d, loss %.3f, %.0f s, ~%.0f s left",
                     step + 1, steps, float(np.mean(losses[-50:])), elapsed, left)  # fmt: skip
    scorer.encoder.eval()


def judged_radius(lookups: Lookups) -> float:
    """The radius holding 98% of the tune lookups' right nearest candidates."""
    right = lookups.right
    return float(np.quantile(lookups.distance[right], 0.98)) if right.any() else 1.0


def fit_stack(
    lookups: Lookups, model_probabilities: np.ndarray, radius: float
) -> list[float] | None:
    """Logistic weights of (the model's logit, the distance) for "the nearest candidate is
    right", over the tune candidates inside ``radius``; None (the model alone) when those
    hold fewer than 10 right and 10 wrong candidates."""
    from sklearn.linear_model import LogisticRegression

    inside = lookups.distance < radius
    right = int(lookups.right[inside].sum())
    if min(right, int(inside.sum()) - right) < 10:
        return None
    clipped = np.clip(model_probabilities, 1e-6, 1 - 1e-6)
    features = np.column_stack([np.log(clipped / (1 - clipped)), lookups.distance])
    fitted = LogisticRegression().fit(features[inside], lookups.right[inside])
    return [float(fitted.coef_[0][0]), float(fitted.coef_[0][1]), float(fitted.intercept_[0])]


def operating_point(
    lookups: Lookups, probabilities: np.ndarray, radius: float, min_recall: float
) -> dict[str, float]:
    """The cut of best precision with recall ≥ ``min_recall`` inside ``radius``."""
    right = lookups.right
    duplicates = max(1, lookups.answerable_count)
    inside = lookups.distance < radius
    best = {"radius": radius, "cut": 0.5, "precision": 0.0, "recall": 0.0}
    for cut in np.round(np.arange(0.05, 0.991, 0.01), 2):
        served = inside & (probabilities >= cut)
        if not served.any():
            continue
        precision = float((served & right).sum() / served.sum())
        recall = float((served & right).sum() / duplicates)
        if recall >= min_recall and precision >= best["precision"]:
            best = {"radius": radius, "cut": float(cut), "precision": precision, "recall": recall}
    return best


# how far int8 may fall below fp32 on the tune lookups, in precision and in recall: well
# inside the spread between dev samples
TOLERANCE = 0.005
PROTOCOL = "cluster"  # right = the served question is in the asked one's duplicate cluster


def as_good(
    cheaper: dict[str, float],
    reference: dict[str, float],
    tolerance: tuple[float, float] = (TOLERANCE, TOLERANCE),
) -> bool:
    """``cheaper``'s tune point serves as well as ``reference``'s: its precision and its
    recall each within ``tolerance`` (of precision, of recall) of the reference's."""
    return (
        cheaper["precision"] >= reference["precision"] - tolerance[0]
        and cheaper["recall"] >= reference["recall"] - tolerance[1]
    )


def sample_spread(lookups: Lookups, served: np.ndarray) -> tuple[float, float]:
    """The standard deviation of precision and of recall between the tune samples (one
    store each, of the benchmark's sample size) when ``served`` are the hits: how much a
    figure moves from one sample to the next. (0, 0) with fewer than two samples."""
    samples = np.unique(lookups.sample)
    if len(samples) < 2:
        return 0.0, 0.0
    precision, recall = [], []
    for sample in samples:
        mine = lookups.sample == sample
        right = int((served & lookups.right & mine).sum())
        precision.append(right / max(1, int((served & mine).sum())))
        recall.append(right / max(1, int((lookups.answerable & mine).sum())))
    return float(np.std(precision, ddof=1)), float(np.std(recall, ddof=1))


def cascade_tolerance(
    lookups: Lookups, scores: np.ndarray, point: dict[str, float]
) -> tuple[float, float]:
    """How far the cascade may move the judge's tune precision and recall: less than
    either moves between samples of the benchmark's size (at least TOLERANCE)."""
    served = (lookups.distance < point["radius"]) & (scores >= point["cut"])
    spread = sample_spread(lookups, served)
    return max(TOLERANCE, spread[0]), max(TOLERANCE, spread[1])


def cascade_bound(lookups: Lookups, scores: np.ndarray, point: dict[str, float]) -> float:
    """The distance below which a candidate is served without the model (the rules still
    apply): the largest bound, on a 0.01 grid up to the radius, at which serving so keeps
    the tune point's precision and recall within ``cascade_tolerance`` (every smaller bound
    too)."""
    radius, cut = point["radius"], point["cut"]
    tolerance = cascade_tolerance(lookups, scores, point)
    refused = refused_by_rules(lookups)
    inside = lookups.distance < radius
    answerable = max(1, lookups.answerable_count)
    bound = 0.0
    for low in np.round(np.arange(0.01, radius + 1e-9, 0.01), 2):
        near = (lookups.distance < low) & ~refused
        served = inside & (near | (scores >= cut))
        right = int((served & lookups.right).sum())
        cascade = {"precision": right / max(1, int(served.sum())), "recall": right / answerable}
        if not as_good(cascade, point, tolerance):
            break
        bound = float(low)
    return bound


def cascade_meta(lookups: Lookups, scores: np.ndarray, point: dict[str, float],
                 serve_below: float) -> dict[str, Any]:  # fmt: skip
    """The cascade's bound, the tolerance it was chosen with, and on tune the share of
    served hits the model still judged and the figures served so."""
    inside = lookups.distance < point["radius"]
    refused = refused_by_rules(lookups)
    near = (lookups.distance < serve_below) & ~refused
    served = inside & (near | (scores >= point["cut"]))
    judged = served & (lookups.distance >= serve_below)
    right = int((served & lookups.right).sum())
    tolerance = cascade_tolerance(lookups, scores, point)
    return {
        "serve_below": serve_below,
        "tune_judged_share_of_hits": round(float(judged.sum() / max(1, served.sum())), 4),
        "cascade_tolerance": {
            "precision": round(tolerance[0], 4),
            "recall": round(tolerance[1], 4),
        },
        "tune_with_cascade": {
            "precision": round(right / max(1, int(served.sum())), 4),
            "recall": round(right / max(1, lookups.answerable_count), 4),
        },
    }


def static_at_recall(lookups: Lookups, recall: float) -> dict[str, float]:
    """The static threshold's precision where its recall first reaches ``recall``."""
    right = lookups.right
    duplicates = max(1, lookups.answerable_count)
    for threshold in np.round(np.arange(0.01, 4.0, 0.005), 3):
        hits = lookups.distance < threshold
        reached = float((hits & right).sum() / duplicates)
        if reached >= recall:
            precision = float((hits & right).sum() / max(1, hits.sum()))
            return {"threshold": float(threshold), "precision": precision, "recall": reached}
    return {"threshold": 4.0, "precision": 0.0, "recall": 0.0}


def tune_lookups(tune_pairs: list[Pair], embed: Any) -> Lookups:
    """The lookup protocol over the tune pairs in samples of ``SAMPLE_PAIRS`` (one store per
    sample, as the quality benchmark does): all 7,500 tune questions in one store gave each
    lookup nearly four times the distractors, and an operating point whose recall fell 7
    points on the benchmark's samples."""
    shuffled = list(tune_pairs)
    random.Random(TUNE_SEED).shuffle(shuffled)
    clusters = DuplicateClusters(tune_pairs)  # of the whole split, before any is left out
    return look_up_in_chunks(distinct_pairs(shuffled), embed, SAMPLE_PAIRS, clusters)


def _model_probabilities(model: PairModel, lookups: Lookups) -> np.ndarray:
    """The model's probabilities one pair at a time, as the service judges: an int8 build's
    activation scale depends on what a pair is batched with."""
    pairs = list(zip(lookups.queries, lookups.candidates, strict=True))
    return model.probabilities(pairs, chunk=1)


def refused_by_rules(lookups: Lookups) -> np.ndarray:
    """Where a rule refuses the nearest candidate (``index/decision/rules.py``)."""
    pairs = zip(lookups.queries, lookups.candidates, strict=True)
    return np.array([refused_by_rule(q, c) for q, c in pairs], dtype=bool)


def served_scores(lookups: Lookups, combined: np.ndarray) -> np.ndarray:
    """The combined probabilities, 0 where a rule refuses (``index/decision/rules.py``)."""
    served = combined.copy()
    served[refused_by_rules(lookups)] = 0.0
    return served


def train(
    train_pairs: list[Pair],
    tune_pairs: list[Pair],
    out: Path,
    seed: int,
    epochs: float,
    lr: float,
    base: Path,
    traps: bool,
    min_recall: float,
    onnx_dir: str,
    provenance: dict[str, Any],
    quick: bool = False,
    mine: bool = False,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    rng = random.Random(seed)
    mined: list[Row] = []
    if mine:
        mined = mined_rows(train_pairs, load_embedder("onnx", None, None, onnx_dir).encode,
                           MINING_RADIUS, MINED_ROWS)  # fmt: skip
        log.info("pair model: %d mined rows (%d right)", len(mined), sum(y for *_, y in mined))
    rows = _examples(train_pairs, rng, traps, quick, mined)
    if quick:  # the tune lookups cost as much as training: a sample of them
        tune_pairs = random.Random(TUNE_SEED).sample(
            tune_pairs, min(QUICK_TUNE_PAIRS, len(tune_pairs))
        )
    log.info("pair model: %d training rows (%d pairs), seed %d, %.2f epochs",
             len(rows), len(train_pairs), seed, epochs)  # fmt: skip
    scorer = _Scorer(base, seed)
    fit(scorer, rows, epochs, lr, seed)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    scorer.save(staging / "torch")
    meta = publish(staging, scorer, tune_pairs, min_recall, {
        "seed": seed,
        "epochs": epochs,
        "training_rows": len(rows),
        "mined_rows": len(mined),
        "train_seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
        **provenance,
    })  # fmt: skip
    _replace_folder(staging, out)
    log.info("pair model: wrote %s in %.0f s: radius %.3f, cut %.2f, tune precision %.3f "
             "recall %.3f", out, time.perf_counter() - started, meta["radius"], meta["cut"],
             meta["tune"]["precision"], meta["tune"]["recall"])  # fmt: skip
    return meta


def publish(
    staging: Path, scorer: "_Scorer", tune_pairs: list[Pair], min_recall: float,
    facts: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Write the shipped form of a trained network into ``staging``: packed (int8 weights,
    float32 compute: ``training/pack_model.py``), with its stack, operating point and
    cascade chosen on the tune pairs with the packed network (the form that serves), its
    figures beside the exact float32 network's, its provenance and a fingerprint of its
    decisions. Returns the metadata written."""
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        scorer.export(fp32)
        pack(fp32, staging)
        shutil.copyfile(staging / "torch" / TOKENIZER_NAME, staging / TOKENIZER_NAME)
        lookups = tune_lookups(tune_pairs, load_embedder("onnx", None).encode)
        raw = {
            name: _model_probabilities(PairModel(path, staging / TOKENIZER_NAME, 0, 0.5), lookups)
            for name, path in (("fp32", fp32), ("packed", staging))
        }
    radius = judged_radius(lookups)
    fitted = {name: fit_stack(lookups, p, radius) for name, p in raw.items()}
    scores = {
        name: served_scores(lookups, combined(p, lookups.distance, fitted[name]))
        for name, p in raw.items()
    }
    points = {name: operating_point(lookups, scores[name], radius, min_recall) for name in raw}
    inside = lookups.distance < radius
    decided = {name: scores[name][inside] >= points[name]["cut"] for name in raw}
    agreement = float(np.mean(decided["fp32"] == decided["packed"]))
    if not as_good(points["packed"], points["fp32"]):
        log.warning("pair model: the packed network serves worse on tune than float32 "
                    "(%s vs %s)", points["packed"], points["fp32"])  # fmt: skip
    stack, point = fitted["packed"], points["packed"]
    serve_below = cascade_bound(lookups, scores["packed"], point)
    model_alone = operating_point(lookups, served_scores(lookups, raw["packed"]), radius,
                                  min_recall)  # fmt: skip
    static = static_at_recall(lookups, point["recall"])
    meta = {
        "radius": round(point["radius"], 4),
        "cut": point["cut"],
        "stack": [round(w, 6) for w in stack] if stack else None,
        **cascade_meta(lookups, scores["packed"], point, serve_below),
        "protocol": PROTOCOL,
        "tune": {
            "pairs": len(lookups.queries),
            "precision": round(point["precision"], 4),
            "recall": round(point["recall"], 4),
        },
        # the static threshold at the same recall on the same tune lookups: the service
        # puts the model in force by default only when it beats that (DYNACACHE_PAIR_MODEL)
        "static_at_same_recall": {k: round(v, 4) for k, v in static.items()},
        # the cross-encoder's probability alone (no stack), for comparison
        "model_alone": {k: round(v, 4) for k, v in model_alone.items()},
        "beats_static": point["precision"] > static["precision"],
        "onnx": "packed-int8",
        "fp32_tune": {k: round(v, 4) for k, v in points["fp32"].items()},
        "packed_decision_agreement": round(agreement, 4),
        "built_at": time.time(),
        **facts,
    }
    (staging / META_NAME).write_text(json.dumps(meta, indent=2))
    stamp(staging)  # version, commit, digests, fingerprint
    return json.loads((staging / META_NAME).read_text())  # type: ignore[no-any-return]


CARRIED = ("seed", "epochs", "training_rows", "mined_rows", "train_seconds", "quick",
           "trained_on", "base", "data_sha256")  # fmt: skip


def reship(folder: Path, tune_pairs: list[Pair], min_recall: float, data: Path) -> dict[str, Any]:
    """Write a build's shipped form again from its ``torch/`` weights (``publish``), keeping
    what its metadata says of its training (the data's digest taken now if it has none)."""
    old = json.loads((folder / META_NAME).read_text())
    staging = folder.parent / f".{folder.name}.shipping-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(folder / "torch", staging / "torch")
    scorer = _Scorer(staging / "torch", int(old.get("seed", 7)))
    facts = {"data_sha256": data_digests(data)} | {k: old[k] for k in CARRIED if k in old}
    meta = publish(staging, scorer, tune_pairs, min_recall, facts)
    _replace_folder(staging, folder)
    return meta


def refit(folder: Path, tune_pairs: list[Pair], min_recall: float, onnx_dir: str) -> dict[str, Any]:
    """Choose a built model's stack and operating point again on ``tune_pairs`` (its network
    unchanged), and rewrite its metadata in place."""
    meta: dict[str, Any] = json.loads((folder / META_NAME).read_text())
    embedder = load_embedder("onnx", None, None, onnx_dir)
    lookups = tune_lookups(tune_pairs, embedder.encode)
    raw = _model_probabilities(PairModel.load(folder), lookups)
    radius = judged_radius(lookups)
    stack = fit_stack(lookups, raw, radius)
    point = operating_point(lookups, served_scores(lookups, combined(raw, lookups.distance, stack)),
                            radius, min_recall)  # fmt: skip
    scores = served_scores(lookups, combined(raw, lookups.distance, stack))
    serve_below = cascade_bound(lookups, scores, point)
    static = static_at_recall(lookups, point["recall"])
    model_alone = operating_point(lookups, served_scores(lookups, raw), radius, min_recall)
    meta |= {
        "radius": round(point["radius"], 4),
        "cut": point["cut"],
        "stack": [round(w, 6) for w in stack] if stack else None,
        **cascade_meta(lookups, scores, point, serve_below),
        "protocol": PROTOCOL,
        "tune": {"pairs": len(lookups.queries), "precision": round(point["precision"], 4),
                 "recall": round(point["recall"], 4)},
        "static_at_same_recall": {k: round(v, 4) for k, v in static.items()},
        "model_alone": {k: round(v, 4) for k, v in model_alone.items()},
        "beats_static": point["precision"] > static["precision"],
        "built_at": time.time(),
    }  # fmt: skip
    staged = folder / f".{META_NAME}.tmp"
    staged.write_text(json.dumps(meta, indent=2))
    staged.replace(folder / META_NAME)
    return meta


def _built(folder: Path, quick_will_do: bool) -> bool:
    """A build is there: any, when a quick one will do; else a full one."""
    meta = folder / META_NAME
    if not meta.exists():
        return False
    return quick_will_do or not json.loads(meta.read_text()).get("quick", False)


def _replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is, whole: a reader sees the old folder or the new one."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _split_own_pairs(pairs: list[Pair], seed: int) -> tuple[list[Pair], list[Pair]]:
    """A user's pairs: a seeded 20% held out for the operating point, and the rest less any
    pair that shares a question with them (so the held-out questions are never trained on)."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    held = shuffled[: max(1, len(shuffled) // 5)]
    held_questions = {normal_form(q) for p in held for q in (p.q1, p.q2)}
    fit_on = [p for p in shuffled[len(held) :]
              if not {normal_form(p.q1), normal_form(p.q2)} & held_questions]  # fmt: skip
    return fit_on, held


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.pair_model_train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--pairs", type=Path, help="fine-tune on these labelled pairs instead")
    parser.add_argument("--base", type=Path, help="the pair model to fine-tune (with --pairs)")
    parser.add_argument("--out", type=Path, default=Path("models/pair"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--epochs",
        type=float,
        help=f"passes over the training rows (default: {EPOCHS} for the build from the shared "
        "data, 1 for a quick build or a fine-tune)",
    )
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--min-recall", type=float, default=MIN_RECALL)
    parser.add_argument("--onnx-dir", default="models/onnx")
    parser.add_argument(
        "--if-missing", action="store_true",
        help="do nothing when built (a quick build counts only when --quick is asked too)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="a small build for the test suite (~1 minute), never put in force by auto",
    )  # fmt: skip
    parser.add_argument(
        "--refit", action="store_true", help="choose --out's stack and operating point again"
    )
    parser.add_argument(
        "--ship", action="store_true",
        help="write --out's shipped form again from its torch/ weights (packed network, "
        "operating point chosen with it on tune, metadata)",
    )  # fmt: skip
    parser.add_argument(
        "--no-stsb", action="store_true",
        help="train on QQP alone (by default STS-B's own train split joins the mix)",
    )  # fmt: skip
    parser.add_argument(
        "--mine", action="store_true",
        help="add the train split's own nearest-candidate lookups (mostly hard negatives)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.if_missing and _built(args.out, args.quick):
        return 0
    if args.pairs is not None:
        pairs = list(read_pairs(args.pairs))
        fit_on, tune = _split_own_pairs(pairs, args.seed)
        if len(fit_on) < 20 or sum(p.duplicate for p in tune) < 10:
            print(f"error: {args.pairs} has too few pairs to fine-tune and hold some out "
                  "(at least ~100 with both labels)", file=sys.stderr)  # fmt: skip
            return 2
        # the shipped model has no torch weights: a build of your own (make pair-model) does
        base = (args.base or args.out) / "torch"
        if not base.exists():
            print(f"error: no torch weights to fine-tune from at {base}: the shipped pair "
                  "model has none; build one (make pair-model) and pass --base",
                  file=sys.stderr)  # fmt: skip
            return 2
        train(fit_on, tune, args.out, args.seed, args.epochs or 1.0, args.lr, base, traps=False,
              min_recall=args.min_recall, onnx_dir=args.onnx_dir,
              provenance={"trained_on": str(args.pairs), "base": str(base)})  # fmt: skip
        return 0
    qqp = args.data / "qqp_open.jsonl"
    if not qqp.exists():
        print(f"warning: {qqp} is missing: no pair model built (static threshold decides)",
              file=sys.stderr)  # fmt: skip
        return 0
    pairs = list(read_pairs(qqp))
    if args.refit or args.ship:
        tune = pairs_in(pairs, "tune")
        meta = (reship(args.out, tune, args.min_recall, args.data) if args.ship
                else refit(args.out, tune, args.min_recall, args.onnx_dir))  # fmt: skip
        print(json.dumps(meta, indent=2))
        return 0
    stsb = args.data / "stsb_train_dev.jsonl"
    # STS-B's train split in the mix, so the judge reads more than Quora's questions (its dev
    # split stays unseen: bench/quality.py measures out of domain on it)
    mixed = [] if args.no_stsb or not stsb.exists() else read_stsb(stsb, "train")
    trained_on = "qqp train split" + (" + stsb train split" if mixed else "")
    epochs = args.epochs or (1.0 if args.quick else EPOCHS)
    train(pairs_in(pairs, "train") + mixed, pairs_in(pairs, "tune"), args.out, args.seed,
          epochs, args.lr, packaged_model_path(), traps=True, min_recall=args.min_recall,
          onnx_dir=args.onnx_dir,
          provenance={"trained_on": trained_on, "data_sha256": data_digests(args.data)},
          quick=args.quick, mine=args.mine)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
