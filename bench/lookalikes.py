"""Quora-style look-alikes (PAWS-like): a stored question and an asked one that keeps most
of its words but means something else, so the stored answer is wrong for it; plus
duplicate-labelled pairs as the should-serve controls.

Questions come from QQP's ``dev`` split (``training/pair_data.py``: no training or tuning
sees it), read at run time from the shared data (never copied here). Kinds, each editing
one question: two words swapped around a relation ("dollars to euros" / "euros to
dollars"), a number changed, a negation ("Why is ..." / "Why isn't ..."), a comparative
swapped ("better" / "worse"), a word replaced by its antonym ("buy" / "sell") or by a
sibling ("Android" / "iOS"). As in ``bench/prompt_variants.py``, each kind's wordings are
split into ``tune`` (a decision may be written against them) and ``held_out`` (fresh ones,
reported apart): the relation words, the auxiliaries, the word lists and the number edits.
"""

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.prompt_variants import SPLITS, Split, Variant, number_changed
from training.pair_data import Pair, distinct_pairs, normal_form, pairs_in, read_pairs

_FUNCTION_WORDS = (
    "a an the to of in on for and or how what why who which when where is are was were do does "
    "did can could should would will be been being i you he she it we they my your his her our "
    "their me him them this that these those not no with without from by at as than into over "
    "want need have has had going able like get got make way best good more most much many "
    "any some all one there here about use used learn start now each other time then "
    "according due related similar different next back itself rather"
)
_NOT_SWAPPED = frozenset(_FUNCTION_WORDS.split())

NEGATIONS = {
    "tune": {"is": "isn't", "are": "aren't", "can": "can't", "does": "doesn't", "do": "don't"},
    "held_out": {"should": "shouldn't", "will": "won't", "would": "wouldn't", "was": "wasn't",
                 "could": "couldn't", "did": "didn't", "always": "never", "ever": "never"},
}  # fmt: skip

COMPARATIVES = {
    "tune": (("better", "worse"), ("more", "less"), ("bigger", "smaller"), ("higher", "lower")),
    "held_out": (("faster", "slower"), ("cheaper", "costlier"), ("older", "younger"),
                 ("easier", "harder"), ("before", "after"), ("longer", "shorter"),
                 ("stronger", "weaker"), ("larger", "smaller")),
}  # fmt: skip

ANTONYMS = {
    "tune": (("good", "bad"), ("increase", "decrease"), ("buy", "sell"), ("start", "stop"),
             ("win", "lose"), ("rich", "poor"), ("love", "hate"), ("best", "worst"),
             ("male", "female"), ("positive", "negative")),
    "held_out": (("advantages", "disadvantages"), ("import", "export"), ("open", "close"),
                 ("first", "last"), ("early", "late"), ("hot", "cold"), ("success", "failure"),
                 ("true", "false"), ("accept", "reject"), ("remember", "forget"),
                 ("borrow", "lend"), ("teacher", "student"), ("gain", "lose"), ("pros", "cons")),
}  # fmt: skip

SIBLINGS = {
    "tune": (("India", "Pakistan"), ("USA", "Canada"), ("China", "Japan"), ("Delhi", "Mumbai"),
             ("London", "Paris"), ("Trump", "Obama"), ("Hindi", "English")),
    "held_out": (("Android", "iOS"), ("Python", "Java"), ("iPhone", "Samsung"), ("cat", "dog"),
                 ("Facebook", "Twitter"), ("Google", "Amazon"), ("engineering", "medicine"),
                 ("Windows", "Linux"), ("C++", "JavaScript"), ("Quora", "Reddit")),
}  # fmt: skip


def _swappable(word: str) -> bool:
    """A word that can be a relation's end (not a function word, not a verb form)."""
    lower = word.lower()
    return lower not in _NOT_SWAPPED and not lower.endswith(("ed", "ing", "ly"))


_NAME = r"([A-Z][A-Za-z]{2,})"
RELATIONS: dict[Split, tuple[str, ...]] = {
    # "from A to B" (any case), "A to B" (names); held out: names around other relations
    "tune": (r"\bfrom ([A-Za-z]{3,}) (to) ([A-Za-z]{3,})\b", rf"\b{_NAME} (to) {_NAME}\b"),
    "held_out": (rf"\b{_NAME} (than|over|into|against|for|in|on) {_NAME}\b",
                 r"\b([a-z]{3,}) (than|into|over) ([a-z]{3,})\b"),
}  # fmt: skip


def relation_swapped(question: str, rng: random.Random, split: Split = "tune") -> Variant | None:
    """The two words on either side of a relation exchanged ("from A to B" / "from B to
    A", "India to USA", "Java than Python")."""
    found = [m for pattern in RELATIONS[split] for m in re.finditer(pattern, question)
             if _swappable(m.group(1)) and _swappable(m.group(3))
             and m.group(1).lower() != m.group(3).lower()]  # fmt: skip
    if not found:
        return None
    m = rng.choice(found)
    swapped = f"{m.group(3)} {m.group(2)} {m.group(1)}"
    return Variant(question[: m.start(1)] + swapped + question[m.end(3) :], m.group(2), split)


def negated(question: str, rng: random.Random, split: Split = "tune") -> Variant | None:
    """An auxiliary negated ("is" / "isn't"), or "always" / "ever" made "never"."""
    words = NEGATIONS[split]
    found = [m for m in re.finditer(r"\b[A-Za-z]+\b", question) if m.group().lower() in words]
    if not found:
        return None
    m = rng.choice(found)
    new = words[m.group().lower()]
    new = new.capitalize() if m.group()[0].isupper() else new
    return Variant(question[: m.start()] + new + question[m.end() :], m.group().lower(), split)


def _exchanged(
    table: dict[str, tuple[tuple[str, str], ...]], case_sensitive: bool
) -> Callable[[str, random.Random, Split], Variant | None]:
    def edit(question: str, rng: random.Random, split: Split = "tune") -> Variant | None:
        flags = 0 if case_sensitive else re.IGNORECASE
        options = []
        for a, b in table[split]:
            for old, new in ((a, b), (b, a)):
                for m in re.finditer(rf"(?<![\w+]){re.escape(old)}(?![\w+])", question, flags):
                    if not re.search(rf"(?<![\w+]){re.escape(new)}(?![\w+])", question, flags):
                        options.append((m, new))
        if not options:
            return None
        m, new = rng.choice(options)
        if m.group()[0].isupper() and not case_sensitive:
            new = new[0].upper() + new[1:]
        return Variant(question[: m.start()] + new + question[m.end() :],
                       f"{m.group().lower()}->{new.lower()}", split)  # fmt: skip

    return edit


comparative_swapped = _exchanged(COMPARATIVES, case_sensitive=False)
antonym = _exchanged(ANTONYMS, case_sensitive=False)
sibling = _exchanged(SIBLINGS, case_sensitive=True)

KINDS: dict[str, Callable[[str, random.Random, Split], Variant | None]] = {
    "relation_swapped": relation_swapped,
    "number_changed": number_changed,
    "negated": negated,
    "comparative_swapped": comparative_swapped,
    "antonym": antonym,
    "sibling": sibling,
}


@dataclass(frozen=True)
class Lookalike:
    stored: str
    asked: str
    kind: str
    split: Split | None
    phrasing: str
    serve: bool  # a duplicate-labelled control (should serve) or a look-alike (must not)


@dataclass(frozen=True)
class LookalikeSet:
    stored: list[str]  # every question stored, each once
    pairs: list[Lookalike]


def generate(
    questions: list[str], duplicates: list[Pair], per_kind: int, seed: int
) -> LookalikeSet:
    """Up to ``per_kind`` look-alikes of each kind (half of each split where the questions
    allow), each from a different stored question, and ``per_kind`` duplicate pairs."""
    rng = random.Random(seed)
    order = list(questions)
    rng.shuffle(order)
    used: set[str] = set()
    pairs: list[Lookalike] = []
    for kind, edit in KINDS.items():
        for split in SPLITS:
            made = 0
            for question in order:
                if made >= per_kind // 2:
                    break
                if question in used:
                    continue
                variant = edit(question, rng, split)
                if variant is None or normal_form(variant.text) == normal_form(question):
                    continue
                used.add(question)
                pairs.append(Lookalike(question, variant.text, kind, variant.split,
                                       variant.phrasing, serve=False))  # fmt: skip
                made += 1
    kept = [p for p in distinct_pairs(duplicates)
            if p.duplicate and normal_form(p.q1) != normal_form(p.q2)
            and p.q1 not in used and p.q2 not in used]  # fmt: skip
    rng.shuffle(kept)
    for pair in kept[:per_kind]:
        pairs.append(Lookalike(pair.q1, pair.q2, "duplicate", None, "", serve=True))
    stored = list(dict.fromkeys(p.stored for p in pairs))
    return LookalikeSet(stored, pairs)


def build(path: Path, per_kind: int, seed: int) -> LookalikeSet:
    """The set from QQP's dev split only (``path``: the shared QQP pairs)."""
    dev = pairs_in(read_pairs(path), "dev")
    questions = list(dict.fromkeys(q.strip() for p in dev for q in (p.q1, p.q2) if q.strip()))
    return generate(questions, dev, per_kind, seed)


def counts(looks: LookalikeSet) -> dict[str, int]:
    found: dict[str, int] = {}
    for pair in looks.pairs:
        found[pair.kind] = found.get(pair.kind, 0) + 1
    return found
