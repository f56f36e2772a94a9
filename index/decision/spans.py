"""What differs between a query and a candidate, span by span, and whether it changes the
answer. Both are read as word and operator tokens; where they part, a span is
**answer-neutral** (courtesy or framing only: the same prompt, served without the judge),
**answer-changing** by a rule (a number, a language, format, length or task word, code or a
quoted string, a name, the same words reordered; in a prompt past ``LONG_WORDS`` words, any
other edit), or undecided (the judge in force, or the distance, decides).
"""

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from index.decision.courtesy import (
    COURTESY,
    COURTESY_CLAUSE_WORDS,
    DIRECTIVES,
    FRAMING,
    INSTRUCTION,
    LONG_WORDS,
    NUMBER_WORDS,
    OPERATOR,
    TASKS,
    TOKEN,
    courteous,
    courtesy_clause,
    framed,
    is_prompt,
)
from index.decision.numbers import numbers_in
from index.decision.rules import negated_by_prefix, swapped_words
from index.decision.verifier import ANTONYM_OF

Rule = Literal[
    "rule:numbers",
    "rule:swapped",
    "rule:negated",
    "rule:antonym",
    "rule:instruction",
    "rule:code",
    "rule:quoted",
    "rule:name",
    "rule:reordered",
    "rule:long-edit",
]

CODE_OPERATORS = 3  # a text with this many operators and brackets carries code

_QUOTED = re.compile(r"\"([^\"\n]{1,200})\"|`([^`\n]{1,200})`|'([^'\n]{2,200})'(?!\w)")
# identifiers: snake_case, camelCase, dotted.names()
_IDENTIFIER = re.compile(r"\b[A-Za-z]\w*_\w+\b|\b[a-z]+[A-Z]\w*\b|\b\w+\.\w+\(")
_CODE_OPERATOR = re.compile(r"[+*/=<>\[\]{}%&|^~\\`]")


@dataclass(frozen=True)
class Difference:
    """How a candidate differs from the query: ``neutral`` (the same prompt), refused by a
    rule (its name), or neither (the judge decides)."""

    neutral: bool = False
    refused_by: Rule | None = None


@dataclass(frozen=True)
class Span:
    """Where the two token sequences part: the query's words, the candidate's; whether the
    span lies in the first or last few words of both texts (an added or dropped clause:
    ``head``, ``tail``), and whether it is one capitalised word for another (``renamed``)."""

    asked: list[str]
    offered: list[str]
    head: bool = False
    tail: bool = False
    renamed: bool = False

    @property
    def at_an_end(self) -> bool:
        return self.head or self.tail


def _is_neutral(spans: list[Span]) -> bool:
    """Courtesy only: in the first and the last few words, the differing words of each side
    together are courtesy, or a short clause of their own that greets, asks for help or
    thanks ("Hey, I need a hand with this.") naming no task, format, number or code and
    negating nothing; elsewhere, every differing word is courtesy or framing beside it."""
    head = [span for span in spans if span.head]
    tail = [span for span in spans if span.tail and not span.head]
    for group in (head, tail):
        asked = [word for span in group for word in span.asked]
        offered = [word for span in group for word in span.offered]
        if courteous(asked + offered):
            continue  # "Please help me" / "I'd like your help"
        if not all(courtesy_clause(words) for words in (asked, offered) if words):
            return False
    middle = [span for span in spans if not span.at_an_end]
    return all(courteous(span.asked) and courteous(span.offered) for span in middle)


def _spans(a: list[str], b: list[str], cased_a: list[str], cased_b: list[str]) -> list[Span]:
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    edge = COURTESY_CLAUSE_WORDS
    return [
        Span(
            a[i1:i2],
            b[j1:j2],
            head=i2 <= edge and j2 <= edge,
            tail=len(a) - i1 <= edge and len(b) - j1 <= edge,
            renamed=i2 - i1 == 1
            and j2 - j1 == 1
            and i1 > 0
            and j1 > 0
            and _name_like(cased_a[i1], cased_b[j1]),
        )
        for op, i1, i2, j1, j2 in matcher.get_opcodes()
        if op != "equal"
    ]


def _name_like(x: str, y: str) -> bool:
    """Two capitalised words, neither the other's short form ("US" / "USA")."""
    if not (x[:1].isupper() and y[:1].isupper() and x.isalpha() and y.isalpha()):
        return False
    lx, ly = x.lower(), y.lower()
    if lx in COURTESY or ly in COURTESY or lx in FRAMING or ly in FRAMING:
        return False
    return not (
        lx.startswith(ly) or ly.startswith(lx) or (lx[0] == ly[0] and min(len(x), len(y)) <= 3)
    )


def _is_code(words: list[str]) -> bool:
    """Code's own operators and brackets (not prose's parentheses and dashes), enough of
    them."""
    return sum(1 for word in words if _CODE_OPERATOR.fullmatch(word)) >= CODE_OPERATORS


def _backticked(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"`([^`\n]{1,200})`", text))


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
    cased_a, cased_b = TOKEN.findall(query), TOKEN.findall(cached)
    a = framed([t.lower() for t in cased_a])
    b = framed([t.lower() for t in cased_b])
    if a == b:
        return Difference(neutral=True)
    spans = _spans(a, b, cased_a, cased_b)
    # a span neutral on its own may still move a word of the other side's, so the two
    # sides' differing words must both be courtesy
    if _is_neutral(spans):
        return Difference(neutral=True)
    # a prompt, not a question: long, or laid out in lines (an instruction and its input)
    long = max(len(a), len(b)) > LONG_WORDS or is_prompt(query) or is_prompt(cached)
    rule = _rule(query, cached, a, b, spans, long)
    if rule is None and long:
        rule = "rule:long-edit"
    return Difference(refused_by=rule)


def _rule(
    query: str, cached: str, a: list[str], b: list[str], spans: list[Span], long: bool
) -> Rule | None:
    """The rule that refuses the candidate, if one does. A short question keeps to the
    precise rules (its paraphrases rename, requote and rephrase freely); a long prompt, which
    any other edit refuses anyway, gets the rule that names the edit."""
    if numbers_in(query) != numbers_in(cached):
        return "rule:numbers"
    if swapped_words(query, cached):
        return "rule:swapped"
    if negated_by_prefix(query, cached) or any(_negated(span) for span in spans):
        return "rule:negated"  # "legal" / "illegal", "Why is ..." / "Why isn't ..."
    if any(_antonyms(span) for span in spans):
        return "rule:antonym"  # "buy" / "sell", "best" / "worst"
    differing = [word for span in spans for word in (*span.asked, *span.offered)]
    identifiers = set(_IDENTIFIER.findall(query)) ^ set(_IDENTIFIER.findall(cached))
    if identifiers or _is_code(a) or _is_code(b):
        return "rule:code"  # an identifier differs, or the prompt carries code
    if _backticked(query) != _backticked(cached):
        return "rule:quoted"
    if any(_instruction_differs(span, long) for span in spans):
        return "rule:instruction"
    if any(_numbers_exchanged(span) for span in spans):
        return "rule:numbers"  # "two crashes" / "five crashes"
    if any(span.renamed for span in spans):
        return "rule:name"  # one name for another ("John" / "Kenya", "Knight" / "Chicago")
    if not long:
        return None
    if any(OPERATOR.fullmatch(word) for word in differing):
        return "rule:code"
    if _quoted(query) != _quoted(cached):
        return "rule:quoted"
    if any(NUMBER_WORDS & set(span.asked) != NUMBER_WORDS & set(span.offered) for span in spans):
        return "rule:numbers"
    if _names(query) != _names(cached) and (_names(query) ^ _names(cached)) & set(differing):
        return "rule:name"
    if sorted(a) == sorted(b) and any(span.asked and span.offered for span in spans):
        return "rule:reordered"
    return None


_NEGATORS = frozenset({"not", "no", "nor"})
_CONTRACTED = {"can't": "can", "cannot": "can", "won't": "will", "shan't": "shall"}


def _negated(span: Span) -> bool:
    """The one side is the other with a negation put in ("is" / "isn't", "do" / "do not",
    "ever" / "never")."""

    def plain(words: list[str]) -> tuple[list[str], int]:
        kept, negations = [], 0
        for word in words:
            if word in _NEGATORS:
                negations += 1
            elif word in _CONTRACTED or word.endswith("n't"):
                negations += 1
                kept.append(_CONTRACTED.get(word, word[:-3]))
            elif word == "never":
                negations += 1
                kept.append("ever")
            else:
                kept.append(word)
        return [w for w in kept if w != "ever"], negations

    (x, m), (y, n) = plain(span.asked), plain(span.offered)
    return x == y and m % 2 != n % 2


def _numbers_exchanged(span: Span) -> bool:
    asked, offered = NUMBER_WORDS & set(span.asked), NUMBER_WORDS & set(span.offered)
    return bool(asked and offered and asked != offered)


def _antonyms(span: Span) -> bool:
    """One word for its opposite, the rest in place."""
    if len(span.asked) != 1 or len(span.offered) != 1:
        return False
    return span.offered[0] in ANTONYM_OF.get(span.asked[0], set())


def _instruction_differs(span: Span, long: bool) -> bool:
    """An instruction added or dropped at either end of a question (a clause opening with a
    directive that names a language, format, length or tone: "Answer in French."), or one
    task for another ("explain" / "fix"); in a long prompt, any such word that differs."""
    asked, offered = set(span.asked) & INSTRUCTION, set(span.offered) & INSTRUCTION
    if asked == offered:
        return False
    if long:
        return True
    clause = span.asked or span.offered
    if (not span.asked or not span.offered) and span.at_an_end:
        # a clause naming a language, format or length, or an imperative of its own
        named = bool(set(clause) & DIRECTIVES) and bool(set(clause) & (INSTRUCTION - TASKS))
        return named or (len(clause) >= 2 and clause[0] in DIRECTIVES)
    tasks = (set(span.asked) & TASKS, set(span.offered) & TASKS)
    return len(span.asked) <= 2 and len(span.offered) <= 2 and all(tasks) and tasks[0] != tasks[1]


def refused(query: str, cached: str) -> bool:
    """Whether a rule refuses ``cached`` for ``query`` (the training's and benches' view of
    the served decision's rules)."""
    return difference(query, cached).refused_by is not None
