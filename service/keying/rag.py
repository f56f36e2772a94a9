"""RAG normalisation: separate the user's question from the context blocks around it.

A RAG prompt is mostly retrieved documents; embedded whole, two prompts over the same
documents look alike whatever they ask, and the same question over other documents looks
different. So only the question is embedded, and the context joins the scope as a hash: the
same question over different documents is a MISS, a paraphrase over the same documents a HIT.

Patterns are regular expressions of two kinds, tried in this order:

- *block* patterns (a ``context`` group, no ``question`` group): every match is cut out of
  the text and its ``context`` group kept (tagged ``<context>``/``<document>``/``<documents>``
  blocks, fenced blocks marked as context);
- *layout* patterns (a ``question`` group, optionally a ``context`` group): the first one
  that matches the whole remaining text gives the question (``Context: ... Question: ...``).

Context blocks are whitespace-collapsed and sorted, so the same documents retrieved in
another order give the same scope.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.keying.normalise import collapse_whitespace

DEFAULT_PATTERNS: tuple[str, ...] = (
    # <context>...</context>, <document id=3>...</document>, <documents>...</documents>
    r"(?is)<(context|documents?)\b[^>]*>(?P<context>.*?)</\1\s*>",
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


class RagSplitter:
    def __init__(self, patterns: Sequence[str] = DEFAULT_PATTERNS, enabled: bool = True) -> None:
        self.enabled = enabled
        self._blocks: list[re.Pattern[str]] = []
        self._layouts: list[re.Pattern[str]] = []
        for source in patterns:
            try:
                pattern = re.compile(source)
            except re.error as error:
                raise InvalidPattern(f"RAG pattern {source!r}: {error}") from error
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

            def keep(match: re.Match[str]) -> str:
                contexts.append(match.group("context"))
                return " "

            text = pattern.sub(keep, text)
        return text

    def _apply_layout(self, text: str, contexts: list[str]) -> str:
        for pattern in self._layouts:
            match = pattern.fullmatch(text)
            if match:
                if "context" in pattern.groupindex and match.group("context"):
                    contexts.append(match.group("context"))
                return match.group("question")
        return text
