"""What of a prompt is embedded and what must match exactly: RAG normalisation separates the
user's question from the context blocks around it.

Only the question is embedded; the context (whitespace-collapsed, sorted) joins the scope as
a hash, so the same question over other documents is a MISS and a paraphrase over the same
documents a HIT. *Block* patterns cut context out, then the first *layout* pattern that
matches the rest gives the question. Patterns run on RE2 (linear time; no backreferences or
lookaround: such a ``DYNACACHE_RAG_PATTERNS`` entry is refused at start-up).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

from service.keying.normalise import collapse_whitespace

DEFAULT_PATTERNS: tuple[str, ...] = (
    # <documents>...</documents> (whole, first), <document id=3>...</document>, <context>...
    r"(?is)<documents\b[^>]*>(?P<context>.*?)</documents\s*>",
    r"(?is)<document\b[^>]*>(?P<context>.*?)</document\s*>",
    r"(?is)<context\b[^>]*>(?P<context>.*?)</context\s*>",
    # ```context (or documents, sources) ... ```
    r"(?is)```[ \t]*(?:context|documents?|sources?)\b[^\n]*\n(?P<context>.*?)```",
    # Context: ... Question: ...
    r"(?is)\s*(?:context|documents?|sources?|background)\s*:\s*(?P<context>.+?)\s*"
    r"(?:question|query)\s*:\s*(?P<question>.+?)\s*",
    # Question: ... Context: ...
    r"(?is)\s*(?:question|query)\s*:\s*(?P<question>.+?)\s*"
    r"(?:context|documents?|sources?|background)\s*:\s*(?P<context>.+?)\s*",
    # what is left after the blocks are cut out: "Question: ..."
    r"(?is)\s*(?:question|query)\s*:\s*(?P<question>.+?)\s*",
)


@dataclass(frozen=True)
class RagSplit:
    question: str  # whitespace-collapsed: what is embedded
    contexts: tuple[str, ...] = field(default=())  # normalised context blocks, sorted


class InvalidPattern(ValueError):
    pass


def _compile(source: str) -> Any:
    """An RE2 pattern (linear-time matching); InvalidPattern when RE2 cannot take it."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(source, options)
    except re2.error as error:
        raise InvalidPattern(
            f"RAG pattern {source!r}: {error} (patterns run on RE2: no backreferences or "
            "lookaround)"
        ) from error


class RagSplitter:
    def __init__(
        self,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._blocks: list[Any] = []  # RE2 patterns (google-re2 has no type stubs)
        self._layouts: list[Any] = []
        for source in patterns:
            pattern = _compile(source)
            groups = pattern.groupindex
            if "question" in groups:
                self._layouts.append(pattern)
            elif "context" in groups:
                self._blocks.append(pattern)
            else:
                raise InvalidPattern(f"RAG pattern {source!r} has no question or context group")

    def split(self, text: str, extra_contexts: Sequence[str | None] = ()) -> RagSplit:
        """The question in ``text`` and every context (found in it, or given beside it)."""
        contexts = [context for context in extra_contexts if context]
        if self.enabled:
            text = self._cut_blocks(text, contexts)
            text = self._apply_layout(text, contexts)
        question = collapse_whitespace(text)
        normalised = sorted({collapse_whitespace(c) for c in contexts if collapse_whitespace(c)})
        return RagSplit(question=question, contexts=tuple(normalised))

    def _cut_blocks(self, text: str, contexts: list[str]) -> str:
        for pattern in self._blocks:
            text = str(pattern.sub(_keeping(contexts), text))
        return text

    def _apply_layout(self, text: str, contexts: list[str]) -> str:
        for pattern in self._layouts:
            match = pattern.fullmatch(text)
            if match:
                if "context" in pattern.groupindex and match.group("context"):
                    contexts.append(match.group("context"))
                return str(match.group("question"))
        return text


def _keeping(contexts: list[str]) -> Callable[[Any], str]:
    """A replacement that keeps each match's context group and leaves a space."""

    def keep(match: Any) -> str:
        contexts.append(match.group("context"))
        return " "

    return keep
