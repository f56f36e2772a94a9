"""Prompt normalisation and scoping.

The exact-match key uses the normalised prompt (trimmed, whitespace collapsed, case-folded);
the embedder sees the whitespace-collapsed prompt. A *scope* is everything besides the
question that changes the answer (model, RAG context, ...): a HIT needs the same scope.
"""

import hashlib
import re
from collections.abc import Sequence

_WHITESPACE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def normalise_prompt(text: str) -> str:
    return collapse_whitespace(text).casefold()


def scope_of(
    model: str | None,
    contexts: Sequence[str] = (),
    conversation: str = "",
    params: str = "",
    user: str = "",
) -> str:
    """A short hash of what a HIT must share besides the question: the model, the normalised
    context blocks, (Chat Completions) the conversation around the question and the
    output-affecting parameters, and (per-user scope) the end user."""
    parts = [model or "", "\x1e".join(collapse_whitespace(c) for c in contexts)]
    if conversation or params or user:  # a bare question hashes as /v1/query's does
        parts += [conversation, params]
    if user:
        parts.append(f"user\x1d{user}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
