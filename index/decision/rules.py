"""The rules the pair model keeps above itself (the verifier keeps the first): a candidate is
refused, however close, when its numbers differ from the query's ("200 mg" / "800 mg"), when
it is the query with two words exchanged ("Germany invade Poland" / "Poland invade
Germany"; not across "and", "or", "vs"), or with one word negated by a prefix ("legal" /
"illegal", "lock" / "unlock"). A cross-encoder trained on QQP learns neither firmly, so they
are rules, as cheap as a tokenisation.
"""

import re

_WORD = re.compile(r"[a-z0-9]+")
SYMMETRIC = frozenset({"and", "or", "vs", "versus"})
_NEGATING_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non")
_ARTICLES = frozenset({"a", "an"})  # "a complete" / "an incomplete"


def swapped_words(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with exactly two words exchanged (not across "and"/"or")."""
    x, y = _WORD.findall(a.lower()), _WORD.findall(b.lower())
    if len(x) != len(y):
        return False
    differ = [i for i, (u, v) in enumerate(zip(x, y, strict=True)) if u != v]
    if len(differ) != 2:
        return False
    i, j = differ
    if x[i] != y[j] or x[j] != y[i]:
        return False
    between = set(x[i + 1 : j])
    return not (between and between <= SYMMETRIC)


def negated_by_prefix(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ in one word only, which is the other with a negating
    prefix ("legal" / "illegal"; articles aside)."""
    x = [word for word in _WORD.findall(a.lower()) if word not in _ARTICLES]
    y = [word for word in _WORD.findall(b.lower()) if word not in _ARTICLES]
    if len(x) != len(y):
        return False
    differ = [(u, v) for u, v in zip(x, y, strict=True) if u != v]
    if len(differ) != 1:
        return False
    ((u, v),) = differ
    longer, base = (u, v) if len(u) > len(v) else (v, u)
    return len(base) >= 3 and any(longer == prefix + base for prefix in _NEGATING_PREFIXES)
