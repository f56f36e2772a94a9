"""Labelled question pairs (``{"q1", "q2", "duplicate"}`` JSONL) and their seeded split.

Every split is drawn *by connected group of questions*: two questions are joined when a
pair links them, and each group (QQP has 47,961; the largest spans 344 pairs) falls in one
split by a seeded hash of its first question (whitespace-collapsed, case-folded): 30% dev,
15% tune, 55% train. So no question of dev is seen in training or tuning, no question of
tune in training, and no pair is thrown away. Of QQP's 64,683 pairs this gives about
19,400 dev, 9,700 tune and 35,600 train. (The earlier split hashed each *question*, kept a
pair only when both its questions fell in one split, and so used 26,667 of the pairs.)

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
SPLIT_SEED = "dyna-cache-pairs-v2"
DEV_SHARE = 30  # % of question groups
TUNE_SHARE = 15  # % of question groups


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


def read_stsb(path: Path, split: str) -> list[Pair]:
    """STS-B sentence pairs of one of its own splits (``train`` or ``dev``), a duplicate
    being a score of 4 or more (the file's ``duplicate``)."""
    with open(path, encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [Pair(str(r["q1"]), str(r["q2"]), bool(r["duplicate"])) for r in rows
            if r.get("split") == split]  # fmt: skip


def normal_form(question: str) -> str:
    return " ".join(question.split()).casefold()


def _bucket(text: str, seed: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{text}".encode()).digest()[:4]) % 100


def _split_of_bucket(bucket: int) -> Split:
    if bucket < DEV_SHARE:
        return "dev"
    return "tune" if bucket < DEV_SHARE + TUNE_SHARE else "train"


class _Groups:
    """Union-find over normal-form questions; a group is named by its smallest question."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def root(self, question: str) -> str:
        parent = self._parent.setdefault(question, question)
        while parent != question:
            grandparent = self._parent[parent]
            self._parent[question] = grandparent
            question, parent = parent, grandparent
        return question

    def join(self, first: str, second: str) -> None:
        a, b = self.root(first), self.root(second)
        if a != b:
            low, high = (a, b) if a < b else (b, a)
            self._parent[high] = low


class DuplicateClusters:
    """Which questions mean the same, as labelled: the transitive closure of every pair
    labelled duplicate (QQP's ``duplicate``; STS-B's is a score of 4 or more), plus the same
    text (normal form). A hit is right when the stored question it serves is in the asked
    question's cluster: not only when it is the pair's own q1, which called an exact repeat
    stored by another pair, or a labelled duplicate of the question, wrong.

    Splits are drawn by connected group of questions, so the clusters of one split's pairs
    are the clusters of the whole data set for its questions."""

    def __init__(self, pairs: Iterable[Pair]) -> None:
        self._groups = _Groups()
        for pair in pairs:
            if pair.duplicate:
                self._groups.join(normal_form(pair.q1), normal_form(pair.q2))

    def of(self, question: str) -> str:
        """The cluster's name (its smallest question in normal form)."""
        return self._groups.root(normal_form(question))

    def same(self, first: str, second: str) -> bool:
        return self.of(first) == self.of(second)


def split_pairs(pairs: Iterable[Pair], seed: str = SPLIT_SEED) -> dict[Split, list[Pair]]:
    """Every pair, in the split of its question group (see the module's docstring)."""
    listed = list(pairs)
    groups = _Groups()
    for pair in listed:
        groups.join(normal_form(pair.q1), normal_form(pair.q2))
    splits: dict[Split, list[Pair]] = {"train": [], "tune": [], "dev": []}
    for pair in listed:
        group = groups.root(normal_form(pair.q1))
        splits[_split_of_bucket(_bucket(group, seed))].append(pair)
    return splits


def pairs_in(pairs: Iterable[Pair], split: Split, seed: str = SPLIT_SEED) -> list[Pair]:
    return split_pairs(pairs, seed)[split]


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
