"""Prompt normalisation and scoping.

The exact-match key uses the normalised prompt (trimmed, whitespace collapsed, case-folded);
the embedder sees the whitespace-collapsed prompt. A *scope* is everything besides the
question that changes the answer (model, RAG context, ...): a HIT needs the same scope.
"""

import hashlib
import re

_WHITESPACE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def normalise_prompt(text: str) -> str:
    return collapse_whitespace(text).casefold()


def scope_of(model: str | None, context: str | None) -> str:
    """A short hash of what a HIT must share besides the question."""
    parts = [model or "", collapse_whitespace(context or "")]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
