"""Labelled question pairs (``{"q1", "q2", "duplicate"}`` JSONL) and their seeded split.

Every split is drawn *by question*: each distinct question (whitespace-collapsed,
case-folded) falls in one split by a seeded hash of its text: 30% dev, 15% tune, 55% train.
A pair belongs to a split only when both its questions do; a pair whose questions fall in
two splits is used by nothing. So no question of dev is seen in training or tuning, and no
question of tune in training (QQP repeats questions across pairs: with a split by pair,
917 of 3,114 tune pairs shared a question with train). Of QQP's 64,683 pairs: 5,660 dev,
1,542 tune and 19,465 train.

Within one sample, ``distinct_pairs`` keeps a pair only when neither of its questions
appeared in a pair kept before it: two stored copies of one question cannot be told apart
by any lookup, so the protocol's "own entry" would be ill-defined.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "tune", "dev"]
SPLIT_SEED = "dyna-cache-pairs-v1"
DEV_SHARE = 30  # % of questions
TUNE_SHARE = 15  # % of questions


@dataclass(frozen=True)
class Pair:
    q1: str
    q2: str
    duplicate: bool


def read_pairs(path: Path) -> Iterator[Pair]:
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                yield Pair(str(row["q1"]), str(row["q2"]), bool(row["duplicate"]))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a {{q1, q2, duplicate}} pair") from error


def normal_form(question: str) -> str:
    return " ".join(question.split()).casefold()


def _bucket(text: str, seed: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{text}".encode()).digest()[:4]) % 100


def split_of_question(question: str, seed: str = SPLIT_SEED) -> Split:
    bucket = _bucket(normal_form(question), seed)
    if bucket < DEV_SHARE:
        return "dev"
    return "tune" if bucket < DEV_SHARE + TUNE_SHARE else "train"


def is_dev_question(question: str, seed: str = SPLIT_SEED) -> bool:
    return split_of_question(question, seed) == "dev"


def split_of(pair: Pair, seed: str = SPLIT_SEED) -> Split | None:
    """The pair's split; None for a pair whose questions fall in two (used by nothing)."""
    first, second = split_of_question(pair.q1, seed), split_of_question(pair.q2, seed)
    return first if first == second else None


def pairs_in(pairs: Iterable[Pair], split: Split, seed: str = SPLIT_SEED) -> list[Pair]:
    return [pair for pair in pairs if split_of(pair, seed) == split]


def distinct_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    """The pairs, less any that shares a question with a pair kept before it."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        questions = {normal_form(pair.q1), normal_form(pair.q2)}
        if questions & seen:
            continue
        seen |= questions
        kept.append(pair)
    return kept
