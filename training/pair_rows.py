"""The pair model's training rows: the given pairs, made-up traps (label 0) and rewordings
(label 1), and rows mined from the train split's own nearest-candidate lookups (mostly hard
negatives)."""

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from training.pair_data import DuplicateClusters, Pair, normal_form
from training.pair_protocol import SAMPLE_PAIRS
from training.verifier_train import hard_negatives, rewordings

TRAPS_PER_QUESTION = 1  # made-up hard negatives per sampled train question
TRAP_QUESTIONS = 5000
TUNE_SEED = 17  # the order of the tune pairs, before they are cut into samples
MAX_ROWS = 34_000  # the training budget: ~25 ms a row on 2 cores, ~14 minutes an epoch
MINING_RADIUS = 0.7  # mined candidates: about the judged radius (0.66 in the last build)
MINED_ROWS = 12_000  # of the ~34,000 rows trained on, about a third
QUICK_ROWS, QUICK_TRAP_QUESTIONS = 2_000, 300  # --quick (``pair_build.py`` says why)

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


def examples(
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
