"""Labelled question pairs (``{"q1", "q2", "duplicate"}`` JSONL) and their seeded split.

The dev split is drawn *by question*: each distinct question (whitespace-collapsed,
case-folded) is a dev question when a seeded hash of its text falls in the first 30%; a pair
is a dev pair when both its questions are. Pairs with either question in dev are never used
for training or tuning, so no dev text is seen by either (QQP repeats questions across
pairs). The remaining pairs are split by a seeded hash of the pair: 10% tune (choosing the
verifier's radius and cut), 90% train. Of QQP's 64,683 pairs: 5,660 dev, 3,114 tune,
28,791 train.

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
TUNE_SHARE = 10  # % of the non-dev pairs


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


def is_dev_question(question: str, seed: str = SPLIT_SEED) -> bool:
    return _bucket(normal_form(question), seed) < DEV_SHARE


def split_of(pair: Pair, seed: str = SPLIT_SEED) -> Split | None:
    """The pair's split; None for a pair with one dev question (used by nothing)."""
    in_dev = is_dev_question(pair.q1, seed), is_dev_question(pair.q2, seed)
    if all(in_dev):
        return "dev"
    if any(in_dev):
        return None
    key = normal_form(pair.q1) + "\x1e" + normal_form(pair.q2)
    return "tune" if _bucket(key, seed + "-tune") < TUNE_SHARE else "train"


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
