"""Train the verifier from ../shared/data (seeded; a few minutes on 2 cores).

    python -m training.verifier_train --data ../shared/data --out models/verifier/verifier.npz
                                   [--if-missing] [--seed 13]

1. QQP pairs, split by question (``training/pair_data.py``): train for fitting, tune for
   choosing the radius and cut; dev is never read here.
2. Training rows follow the quality protocol: store every train q1, look up every q2; the
   nearest stored question inside a wide radius is a row, labelled right when it is the
   pair's own q1 and the pair is a duplicate.
3. Hard negatives the data has too few of, made from train questions: a changed number,
   swapped names or words, an inserted negation, a word swapped for its antonym; and light
   rewordings as positives.
4. Three one-hidden-layer MLPs (scikit-learn, seeds seed..seed+2) on standardised
   features, averaged; the weights are saved (float16) for numpy inference, with the
   operating point: cut 0.5, and the radius of best F1 at that cut on the tune pairs.

Seeded, and with one BLAS thread: the same environment gives the same weights. Across
machines the ONNX export differs in its last bits (embeddings by ~1e-7), which training
amplifies into slightly different weights; the operating point rule keeps the behaviour.
"""

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from index.decision.distance import DEFAULT_THRESHOLD
from index.decision.numbers import NUMBER
from index.decision.verifier import (
    ANTONYM_OF,
    CAPITALISED,
    NO_RUNNER_UP,
    TEXT_FEATURES,
    Features,
    Verifier,
)
from index.embedding.embedder import load_embedder
from training.pair_artifact import code_commit, data_digests
from training.pair_data import DuplicateClusters, distinct_pairs, pairs_in, read_pairs
from training.pair_protocol import (
    RADII,
    SAMPLE_PAIRS,
    Embed,
    Lookups,
    look_up_in_chunks,
    remembered,
    static_curve,
    verifier_curve,
)

TRAIN_RADIUS = 1.0  # rows farther than this are never verified
HIDDEN = (128,)
# The served cut: a candidate is served when the verifier finds it more likely right than
# wrong. (A lower cut buys recall on QQP, but then lets through traps it scores 0.2-0.4.)
# The radius is the one of best F1 at that cut on the tune pairs.
CUT = 0.5
AUGMENTED_WEIGHT = 6  # the made-up traps are few beside QQP's rows: count each this often
MEMBERS = 3  # networks (seeds) averaged
_AUXILIARY = re.compile(r"\b(is|are|do|does|did|can|should|will|was|could|would)\b", re.I)


def hard_negatives(question: str, rng: random.Random) -> list[str]:
    variants = []
    number = NUMBER.search(question)
    if number:
        digits = int(re.sub(r"\D", "", number.group())[:9])
        changed = str(digits * 2 + rng.randint(1, 9))
        variants.append(question[: number.start()] + changed + question[number.end() :])
    names = list(dict.fromkeys(CAPITALISED.findall(question)))
    if len(names) >= 2:
        a, b = names[0], names[1]
        swapped = re.sub(rf"\b({re.escape(a)}|{re.escape(b)})\b",
                         lambda m: b if m.group() == a else a, question)  # fmt: skip
        variants.append(swapped)
    words = question.split()
    content = [i for i, w in enumerate(words) if len(w.strip("?,.")) > 3]
    if len(content) >= 2:
        i, j = content[0], content[-1]
        a, b = words[i].strip("?,."), words[j].strip("?,.")
        if a.lower() != b.lower():
            words[i], words[j] = words[i].replace(a, b), words[j].replace(b, a)
            variants.append(" ".join(words))
    auxiliary = _AUXILIARY.search(question)
    if auxiliary:
        variants.append(question[: auxiliary.end()] + " not" + question[auxiliary.end() :])
    for token in re.findall(r"[A-Za-z]+", question):
        opposites = ANTONYM_OF.get(token.lower())
        if opposites:
            variants.append(re.sub(rf"\b{token}\b", sorted(opposites)[0], question, count=1))
            break
    return [v for v in variants if v != question]


def rewordings(question: str) -> list[str]:
    variants = [question.rstrip("?").lower(), question.replace("?", " ?")]
    for a, b in (("How do I ", "How can I "), ("How can I ", "How do I "),
                 ("What is ", "What's "), ("What are ", "Which are ")):  # fmt: skip
        if question.startswith(a):
            variants.append(b + question[len(a) :])
    return [v for v in variants if v != question]


def augmented_rows(
    lookups: Lookups, embed: Embed, features: Features, rng: random.Random, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows for variants of stored questions: hard negatives (0), rewordings (1)."""
    stored = list(dict.fromkeys(lookups.candidates))
    originals = rng.sample(stored, min(count, len(stored)))
    sources, variants, labels = [], [], []
    for question in originals:
        for variant in hard_negatives(question, rng):
            sources.append(question)
            variants.append(variant)
            labels.append(0)
        for variant in rewordings(question)[:1]:
            sources.append(question)
            variants.append(variant)
            labels.append(1)
    vectors = embed(variants + originals)
    variant_vectors = vectors[: len(variants)]
    original_vector = dict(zip(originals, vectors[len(variants) :], strict=True))
    haystack = faiss.IndexFlatL2(vectors.shape[1])
    haystack.add(np.unique(lookups.candidate_vectors, axis=0))
    near, _ = haystack.search(variant_vectors, 3)
    rows = []
    for position, (source, variant) in enumerate(zip(sources, variants, strict=True)):
        source_vector = original_vector[source]
        distance = float(((variant_vectors[position] - source_vector) ** 2).sum())
        others = [d for d in near[position] if d > distance + 1e-6]
        runner_up = float(others[0]) if others else NO_RUNNER_UP
        rows.append(
            features.row(
                variant, source, variant_vectors[position], source_vector, distance, runner_up
            )
        )
    return np.stack(rows), np.array(labels)


# --quick: a small build for the test suite (under a minute: most of the time is embedding)
QUICK_TRAIN_PAIRS, QUICK_TUNE_PAIRS, QUICK_AUGMENTED = 4_000, 1_500, 1_000


def train(
    data: Path, out: Path, seed: int, threads: int | None, quick: bool = False
) -> dict[str, Any]:
    from sklearn.neural_network import MLPClassifier

    started = time.perf_counter()

    def progress(what: str) -> None:
        print(f"{what} [{time.perf_counter() - started:.0f} s]", flush=True)

    rng = random.Random(seed)
    embedder = load_embedder("onnx", None, threads)
    pairs = list(read_pairs(data / "qqp_open.jsonl"))
    train_pairs, tune_pairs = pairs_in(pairs, "train"), pairs_in(pairs, "tune")
    # the duplicate clusters of each split, before pairs sharing a question are left out
    train_clusters, tune_clusters = DuplicateClusters(train_pairs), DuplicateClusters(tune_pairs)
    rng.shuffle(train_pairs)
    rng.shuffle(tune_pairs)
    train_pairs, tune_pairs = distinct_pairs(train_pairs), distinct_pairs(tune_pairs)
    if quick:
        train_pairs, tune_pairs = train_pairs[:QUICK_TRAIN_PAIRS], tune_pairs[:QUICK_TUNE_PAIRS]
    progress(f"train pairs {len(train_pairs)}, tune pairs {len(tune_pairs)}")
    texts = [q for p in train_pairs for q in (p.q1, p.q2)]
    features = Features.fit(texts)
    embed = remembered(embedder.encode, texts + [q for p in tune_pairs for q in (p.q1, p.q2)])
    progress("embedded")

    lookups = look_up_in_chunks(train_pairs, embed, SAMPLE_PAIRS, train_clusters)
    inside = lookups.distance < TRAIN_RADIUS
    rows = lookups.features(features)[inside]
    labels = lookups.right[inside].astype(int)
    augmented = QUICK_AUGMENTED if quick else 4000
    extra_rows, extra_labels = augmented_rows(lookups, embedder.encode, features, rng, augmented)
    x = np.concatenate([rows, *[extra_rows] * AUGMENTED_WEIGHT]).astype(np.float32)
    y = np.concatenate([labels, *[extra_labels] * AUGMENTED_WEIGHT])
    progress(f"rows {len(y)} ({len(extra_labels)} augmented), positives {int(y.sum())}")

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    members = []
    for member in range(MEMBERS):
        model = MLPClassifier(
            hidden_layer_sizes=HIDDEN, alpha=1e-2, batch_size=256, learning_rate_init=1e-3,
            max_iter=200, early_stopping=True, n_iter_no_change=10, random_state=seed + member,
        )  # fmt: skip
        model.fit((x - mean) / scale, y)
        members.append(list(zip(model.coefs_, model.intercepts_, strict=True)))
        progress(f"member {member} fitted in {model.n_iter_} epochs")

    meta: dict[str, Any] = {"radius": 1.0, "cut": 0.5}
    tune = look_up_in_chunks(tune_pairs, embed, SAMPLE_PAIRS, tune_clusters)
    probabilities = Verifier(features, members, mean, scale, meta).probabilities(
        tune.features(features)
    )
    points = [p for r in RADII for p in verifier_curve(tune, probabilities, r, [CUT])]
    chosen = max(points, key=lambda p: (p.f1, -p.radius))
    static = static_curve(tune, [DEFAULT_THRESHOLD])[0]
    meta.update(
        radius=chosen.radius,
        cut=chosen.cut,
        seed=seed,
        features=[*TEXT_FEATURES, "abs_difference[384]", "product[384]"],
        hidden=list(HIDDEN),
        train_pairs=len(train_pairs),
        train_rows=len(y),
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        quick=quick,
        code_commit=code_commit(),
        data_sha256=data_digests(data),
        tune={"pairs": len(tune_pairs), "precision": round(chosen.precision, 4),
              "recall": round(chosen.recall, 4), "f1": round(chosen.f1, 4),
              "static_default": {"threshold": DEFAULT_THRESHOLD,
                                 "precision": round(static.precision, 4),
                                 "recall": round(static.recall, 4)}},
    )  # fmt: skip
    Verifier(features, members, mean, scale, meta).save(out)
    progress(f"radius {chosen.radius}, cut {chosen.cut}: tune {json.dumps(meta['tune'])}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("models/verifier/verifier.npz"))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--if-missing", action="store_true",
        help="do nothing when built (a quick build counts only when --quick is asked too)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a small build for the tests")
    args = parser.parse_args()
    built = args.out.exists() and (args.quick or not Verifier.load(args.out).meta.get("quick"))
    if args.if_missing and built:
        return
    if not (args.data / "qqp_open.jsonl").exists():
        print(f"warning: {args.data}/qqp_open.jsonl not found: no verifier trained "
              "(the service then decides by the static threshold)", file=sys.stderr)  # fmt: skip
        return
    np.random.seed(args.seed)
    # one BLAS thread: a multi-threaded sum's order varies, and training amplifies the last
    # bit into another model; with one thread the same data gives the same weights
    with threadpool_limits(limits=1):
        train(args.data, args.out, args.seed, args.threads, args.quick)


if __name__ == "__main__":
    main()
