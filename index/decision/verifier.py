"""The verifier: a second decision stage for a cached candidate near a query.

One cosine cannot tell "Why did Poland invade Germany?" from "Why did Germany invade
Poland?"; the verifier reads more (top-1/top-2 margin, token overlap, negation, numbers,
entities, antonyms, word order, the question word, length, a projection of the two vectors)
and gives the probability that the candidate's answer is right. Small MLPs trained by
``training/verifier_train.py``, numpy inference; the ``.npz`` artifact holds the weights,
the scaling, the radius and the cut.
"""

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.decision.numbers import numbers_in


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# what the features (and the trap generator of training/) take for a number and a name
CAPITALISED = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][a-zA-Z]+")
_STOPWORDS = _words(
    """a an the of to in on for and or is are was were be been being do does did i my me you
    your we our it its this that these those what how why when where who which whom can
    could should would will shall may might must there their they them he she his her
    with at by from as about into than then so if"""
)
_NEGATIONS = _words(
    """not no never without cannot cant dont doesnt isnt arent wasnt werent wont didnt
    shouldnt couldnt wouldnt nor none nothing nobody"""
)
_AUXILIARIES = _words("""do does did is are was were wo ca should could would have has""")
_QUESTION_WORDS = ("what", "how", "why", "when", "where", "who", "which", "whom", "whose")
# pairs of opposites, a few a line: a word list, not one pair a line
_ANTONYMS = [
    ("cancel", "keep"), ("cancel", "renew"), ("buy", "sell"), ("increase", "decrease"),
    ("increase", "reduce"), ("start", "stop"), ("begin", "end"), ("win", "lose"),
    ("best", "worst"), ("open", "close"), ("before", "after"), ("enable", "disable"),
    ("add", "remove"), ("gain", "lose"), ("hot", "cold"), ("high", "low"),
    ("cheap", "expensive"), ("good", "bad"), ("easy", "hard"), ("easy", "difficult"),
    ("fast", "slow"), ("love", "hate"), ("pros", "cons"), ("advantages", "disadvantages"),
    ("import", "export"), ("upload", "download"), ("login", "logout"), ("accept", "reject"),
    ("allow", "block"), ("legal", "illegal"), ("safe", "dangerous"), ("true", "false"),
    ("male", "female"), ("men", "women"), ("boy", "girl"), ("rich", "poor"),
    ("first", "last"), ("more", "less"), ("maximum", "minimum"), ("max", "min"),
    ("positive", "negative"), ("inside", "outside"), ("up", "down"), ("left", "right"),
    ("north", "south"), ("east", "west"), ("day", "night"), ("old", "new"),
    ("young", "old"), ("wet", "dry"), ("strong", "weak"), ("encrypt", "decrypt"),
    ("lend", "borrow"), ("give", "receive"), ("push", "pull"), ("heat", "cool"),
]  # fmt: skip
ANTONYM_OF: dict[str, set[str]] = {}
for _a, _b in _ANTONYMS:
    ANTONYM_OF.setdefault(_a, set()).add(_b)
    ANTONYM_OF.setdefault(_b, set()).add(_a)

NO_RUNNER_UP = 2.0  # the margin when there is no second candidate


@dataclass(frozen=True)
class _Text:
    tokens: list[str]
    content: list[str]
    numbers: frozenset[str]
    entities: frozenset[str]
    negations: int
    question_word: str


def _analyse(text: str) -> _Text:
    tokens = [t.replace("'", "") for t in _TOKEN.findall(text.lower())]
    content = [t for t in tokens if t not in _STOPWORDS and t not in _NEGATIONS]
    return _Text(
        tokens=tokens,
        content=content,
        numbers=numbers_in(text),
        entities=frozenset(e.lower() for e in CAPITALISED.findall(text.strip())),
        negations=sum(
            t in _NEGATIONS or (t.endswith("nt") and t[:-2] in _AUXILIARIES) for t in tokens
        ),
        question_word=next((t for t in tokens if t in _QUESTION_WORDS), ""),
    )


def _jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _order_discordance(a: list[str], b: list[str]) -> float:
    """Of the pairs of words both texts use once, the share in opposite order."""
    shared = [t for t in a if a.count(t) == 1 and b.count(t) == 1]
    if len(shared) < 2:
        return 0.0
    position = {t: b.index(t) for t in shared}
    pairs = discordant = 0
    for i in range(len(shared)):
        for j in range(i + 1, len(shared)):
            pairs += 1
            discordant += position[shared[i]] > position[shared[j]]
    return discordant / pairs


class Features:
    """A candidate's feature row. Holds the word rarities (IDF) learned from the training
    questions, for the overlap and mismatch features that weigh a rare word (a product, a
    place, a language) above a common one."""

    def __init__(self, idf: dict[str, float], unseen_idf: float) -> None:
        self.idf = idf
        self.unseen_idf = unseen_idf

    @classmethod
    def fit(cls, texts: Sequence[str]) -> "Features":
        documents: Counter[str] = Counter()
        for text in texts:
            documents.update({t.replace("'", "") for t in _TOKEN.findall(text.lower())})
        total = max(1, len(texts))
        idf = {w: round(math.log(total / (1 + n)), 3) for w, n in documents.items() if n > 1}
        return cls(idf, round(math.log(total), 3))

    def rarity(self, word: str) -> float:
        return self.idf.get(word, self.unseen_idf)

    def text_row(
        self, query: str, candidate: str, distance: float, runner_up: float | None
    ) -> list[float]:
        q, c = _analyse(query), _analyse(candidate)
        q_words, c_words = set(q.tokens), set(c.tokens)
        q_content, c_content = set(q.content), set(c.content)
        clash = any(
            ANTONYM_OF.get(t, set()) & (c_content - q_content) for t in q_content - c_content
        )
        margin = (
            NO_RUNNER_UP if runner_up is None else min(NO_RUNNER_UP, max(0.0, runner_up - distance))
        )
        # fsum: exact, so the order of a set's iteration cannot change a bit of the result
        shared = math.fsum(self.rarity(t) for t in q_words & c_words)
        either = math.fsum(self.rarity(t) for t in q_words | c_words) or 1.0
        only_query = max((self.rarity(t) for t in q_words - c_words), default=0.0)
        only_candidate = max((self.rarity(t) for t in c_words - q_words), default=0.0)
        return [
            1.0 - distance / 2.0,
            margin,
            distance,
            _jaccard(q_words, c_words),
            _jaccard(q_content, c_content),
            min(len(q.tokens), len(c.tokens)) / max(1, len(q.tokens), len(c.tokens)),
            float(q.negations % 2 != c.negations % 2),
            float(q.numbers != c.numbers),
            float(bool(q.numbers or c.numbers)),
            1.0 - _jaccard(q.entities, c.entities),
            _order_discordance(q.content, c.content),
            float(clash),
            float(q.question_word != c.question_word),
            len(q_content ^ c_content) / max(1, len(q_content) + len(c_content)),
            shared / either,
            max(only_query, only_candidate),
            only_query,
            only_candidate,
            len(q_words ^ c_words),
        ]

    def row(
        self,
        query: str,
        candidate: str,
        query_vector: np.ndarray,
        candidate_vector: np.ndarray,
        distance: float,
        runner_up: float | None,
    ) -> np.ndarray:
        """One row of the verifier's input: the text features, then |u−v| and u⊙v."""
        u = np.asarray(query_vector, dtype=np.float32)
        v = np.asarray(candidate_vector, dtype=np.float32)
        text = np.asarray(self.text_row(query, candidate, distance, runner_up), np.float32)
        return np.concatenate([text, np.abs(u - v), u * v])


TEXT_FEATURES = (
    "cosine",
    "margin",
    "distance",
    "token_jaccard",
    "content_jaccard",
    "length_ratio",
    "negation_mismatch",
    "number_mismatch",
    "has_numbers",
    "entity_difference",
    "order_discordance",
    "antonym_clash",
    "question_word_mismatch",
    "content_difference",
    "idf_jaccard",
    "max_unmatched_idf",
    "max_idf_only_in_query",
    "max_idf_only_in_candidate",
    "unmatched_words",
)


Layers = list[tuple[np.ndarray, np.ndarray]]  # (weights, bias) per layer, ReLU between


_NUMBER_MISMATCH = TEXT_FEATURES.index("number_mismatch")


class Verifier:
    """The trained MLPs over a candidate's features: the probability (their mean) that it
    is a right answer. Several seeds' networks are averaged: one alone swings on the rare
    traps the data has few of."""

    def __init__(
        self,
        features: Features,
        members: list[Layers],
        mean: np.ndarray,
        scale: np.ndarray,
        meta: dict[str, Any],
    ) -> None:
        self.features = features
        self.members = [
            [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers] for layers in members
        ]
        self.mean = mean.astype(np.float32)
        self.scale = scale.astype(np.float32)
        self.radius = float(meta["radius"])
        self.cut = float(meta["cut"])
        self.meta = meta

    @classmethod
    def load(cls, path: Path) -> "Verifier":
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(bytes(arrays["meta"]).decode())
        idf = json.loads(bytes(arrays["idf"]).decode())
        members = [
            [(arrays[f"m{m}w{i}"], arrays[f"m{m}b{i}"]) for i in range(int(meta["layers"]))]
            for m in range(int(meta["members"]))
        ]
        features = Features(idf["idf"], idf["unseen"])
        return cls(features, members, arrays["mean"], arrays["scale"], meta)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "mean": self.mean,
            "scale": self.scale,
            "meta": _json_bytes(
                {**self.meta, "layers": len(self.members[0]), "members": len(self.members)}
            ),
            "idf": _json_bytes({"idf": self.features.idf, "unseen": self.features.unseen_idf}),
        }
        for m, layers in enumerate(self.members):
            for i, (w, b) in enumerate(layers):
                arrays[f"m{m}w{i}"], arrays[f"m{m}b{i}"] = w.astype(np.float16), b

        np.savez_compressed(path, allow_pickle=False, **arrays)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(rows)
        x = (rows - self.mean) / self.scale
        total = np.zeros(len(x), dtype=np.float64)
        for layers in self.members:
            hidden = x
            for w, b in layers[:-1]:
                hidden = np.maximum(hidden @ w + b, 0.0)
            w, b = layers[-1]
            logits = (hidden @ w + b).ravel()
            total += 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        probabilities: np.ndarray = total / len(self.members)
        # one rule above the networks: different numbers ("200 mg" / "800 mg") are a
        # different question. QQP labels enough such pairs duplicate that the networks do
        # not learn it firmly; on its tune pairs the rule costs 1.5 points of recall and no
        # precision
        probabilities[rows[:, _NUMBER_MISMATCH] == 1.0] = 0.0
        return probabilities

    def probability(
        self,
        query: str,
        candidate: str,
        query_vector: np.ndarray,
        candidate_vector: np.ndarray,
        distance: float,
        runner_up: float | None,
    ) -> float:
        row = self.features.row(
            query, candidate, query_vector, candidate_vector, distance, runner_up
        )
        return float(self.probabilities(row)[0])


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
