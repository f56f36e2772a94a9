"""What differs between a query and a candidate, span by span, and whether it changes the
answer. Both texts are read as word and operator tokens (casing, whitespace and sentence
punctuation never differ); the spans where the two token sequences part are then read:

- **answer-neutral** when every differing word is courtesy or framing ("Hi!", "please",
  "Could you help me with this?", "thanks a lot"): the candidate is the same prompt, served
  without the judge;
- **answer-changing** by a rule: a differing number, a language, format, length or task
  word added, removed or exchanged ("Answer in French.", "as JSON", "explain" / "fix"), a
  differing code token or quoted string, a different name, the same words in another order;
- past ``LONG_WORDS`` words (a prompt, not a question), any other differing span: a long
  prompt is served only for a neutral difference (its embedding barely moves with an edit,
  and the judge reads only its first words);
- otherwise undecided: the judge in force (or the distance) decides.
"""

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from index.decision.numbers import numbers_in
from index.decision.rules import SYMMETRIC, negated_by_prefix, swapped_words

Rule = Literal[
    "rule:numbers", "rule:swapped", "rule:negated", "rule:instruction", "rule:code",
    "rule:quoted", "rule:name", "rule:reordered", "rule:long-edit",
]  # fmt: skip

CODE_OPERATORS = 3  # a text with this many operators and brackets carries code
LONG_WORDS = 40  # beyond this many words a query is a prompt: only neutral edits serve

_TOKEN = re.compile(r"[A-Za-z0-9_']+|[+\-*/=<>()\[\]{}%&|^~#@$\\`]")
_QUOTED = re.compile(r"\"([^\"\n]{1,200})\"|`([^`\n]{1,200})`|'([^'\n]{2,200})'(?!\w)")
_CODE_WORD = re.compile(r".*(_|[a-z][A-Z]|\d[a-z]|[a-z]\d).*")
_OPERATOR = re.compile(r"[+\-*/=<>()\[\]{}%&|^~#@$\\`]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# courtesy and framing: words a request can gain or lose without asking anything else
COURTESY = _words(
    """hi hello hey heya hiya greetings dear there good morning afternoon evening day all
    folks team everyone friend please pls plz kindly thanks thank thx ty cheers much lot lots
    so very many really advance appreciate appreciated grateful regards best wishes sincerely
    help helping assist assistance out question task request query problem bit quick
    quickly favor favour possible mind wonder wondering hoping hope need want like love ok
    okay oh well could"""
)
# function words: neutral only beside a courtesy word ("help me with this", "thanks in
# advance"), never alone ("to" / "from", "with" / "without"); no negation, no question word
FRAMING = _words(
    """a an the this that these those following of in on at to for with from by about as
    into out up so if and or but then it it's its is are was were be been being am do does
    did have has had would could i i'm im me my mine we our us you your you're yours they
    them their here just some any all also too again get got able there please"""
)
# words that name what kind of answer is wanted: its language, format, length, or task
INSTRUCTION = _words(
    """french spanish german italian portuguese dutch russian chinese mandarin japanese
    korean arabic hindi turkish polish swedish greek hebrew english latin language
    json yaml xml csv html markdown table tables list lists bullet bullets bulleted numbered
    outline haiku poem poems limerick sonnet essay tweet email letter story dialogue
    script code snippet pseudocode diagram chart summary tldr
    sentence sentences word words paragraph paragraphs line lines page pages brief briefly
    short shorter long longer detailed detail concise concisely simple simply eli5 child
    kid beginner expert formal informal casual funny humorous serious tone style
    explain fix translate summarize summarise rewrite rephrase paraphrase refactor debug
    optimize optimise document comment test tests review convert compare classify
    describe define list outline critique improve shorten expand continue complete
    step steps example examples only without exactly at most least maximum minimum"""
)
_MODALS = frozenset({"can", "could", "would", "will"})
_NUMBER_WORDS = _words(
    """two three four five six seven eight nine ten eleven twelve fifteen twenty
    thirty forty fifty hundred thousand million billion first second third half double"""
)


@dataclass(frozen=True)
class Difference:
    """How a candidate differs from the query: ``neutral`` (the same prompt), refused by a
    rule (its name), or neither (the judge decides)."""

    neutral: bool = False
    refused_by: Rule | None = None


def tokens(text: str) -> list[str]:
    return [token.lower() for token in _TOKEN.findall(text)]


def _is_neutral(span: list[str]) -> bool:
    """Courtesy, and framing words beside it (an empty span is neutral)."""
    if not span:
        return True
    return all(w in COURTESY or w in FRAMING for w in span) and any(w in COURTESY for w in span)


def _framed(words: list[str]) -> list[str]:
    """ "can you" / "would you" / "will you" read as "could you": one request."""
    return [
        "could" if w in _MODALS and i + 1 < len(words) and words[i + 1] == "you" else w
        for i, w in enumerate(words)
    ]


def _spans(a: list[str], b: list[str]) -> list[tuple[list[str], list[str]]]:
    """The differing spans (the query's words, the candidate's) where the sequences part."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


def _is_code(words: list[str]) -> bool:
    return sum(1 for word in words if _OPERATOR.fullmatch(word)) >= CODE_OPERATORS


def _quoted(text: str) -> frozenset[str]:
    return frozenset(
        " ".join(next(g for g in m.groups() if g).split()) for m in _QUOTED.finditer(text)
    )


def _names(text: str) -> frozenset[str]:
    """Capitalised words not opening a sentence: a text's names."""
    found = re.findall(r"(?<![.?!:]\s)(?<!^)(?<!\n)\b([A-Z][a-zA-Z]{1,})", text.strip())
    return frozenset(word.lower() for word in found)


def difference(query: str, cached: str) -> Difference:
    """What differs between ``query`` and ``cached`` (the candidate's question), and
    whether that changes the answer."""
    a, b = _framed(tokens(query)), _framed(tokens(cached))
    if a == b:
        return Difference(neutral=True)
    spans = _spans(a, b)
    # a span neutral on its own may still move a word of the other side's, so the two
    # sides' differing words must both be courtesy
    if all(_is_neutral(x) and _is_neutral(y) for x, y in spans):
        return Difference(neutral=True)
    rule = _rule(query, cached, a, b, spans)
    if rule is None and max(len(a), len(b)) > LONG_WORDS:
        rule = "rule:long-edit"
    return Difference(refused_by=rule)


def _rule(
    query: str, cached: str, a: list[str], b: list[str], spans: list[tuple[list[str], list[str]]]
) -> Rule | None:
    if numbers_in(query) != numbers_in(cached):
        return "rule:numbers"
    if swapped_words(query, cached):
        return "rule:swapped"
    if negated_by_prefix(query, cached):
        return "rule:negated"
    differing = [word for x, y in spans for word in (*x, *y)]
    if any(_OPERATOR.fullmatch(word) or _CODE_WORD.fullmatch(word) for word in differing):
        return "rule:code"
    if _is_code(a) or _is_code(b):  # in code every identifier matters
        return "rule:code"
    if _quoted(query) != _quoted(cached):
        return "rule:quoted"
    for x, y in spans:
        asked, offered = set(x) & INSTRUCTION, set(y) & INSTRUCTION
        if asked != offered and not (x and y and asked and offered and len(x) + len(y) > 6):
            return "rule:instruction"
        if set(x) & _NUMBER_WORDS != set(y) & _NUMBER_WORDS:
            return "rule:numbers"
    if _names(query) ^ _names(cached) and _names(query) and _names(cached):
        differing_names = (_names(query) ^ _names(cached)) & set(differing)
        if (
            differing_names
            and any(set(x) & differing_names for x, _ in spans)
            and any(set(y) & differing_names for _, y in spans)
        ):
            return "rule:name"
    # the same words, some exchanging places ("A to B" / "B to A"); a phrase moved whole
    # ("In Python, how do I ..." / "How do I ... in Python?") parts as an insertion and a
    # deletion, and asks the same
    exchanged = any(x and y for x, y in spans)
    if sorted(a) == sorted(b) and exchanged and not _around_a_conjunction(a, b):
        return "rule:reordered"
    return None


def _around_a_conjunction(a: list[str], b: list[str]) -> bool:
    """Whether the words that moved stand around "and" / "or" ("between A and B" asks what
    "between B and A" asks)."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    parted = [(i1, i2) for op, i1, i2, _, _ in matcher.get_opcodes() if op != "equal"]
    return bool(parted) and bool(SYMMETRIC & set(a[parted[0][0] : parted[-1][1]]))


def refused(query: str, cached: str) -> bool:
    """Whether a rule refuses ``cached`` for ``query`` (the training's and benches' view of
    the served decision's rules)."""
    return difference(query, cached).refused_by is not None
