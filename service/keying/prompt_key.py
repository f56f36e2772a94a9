"""What a prompt is cached under: the question that is embedded, its exact-match form, and
the scope (everything else a HIT must share)."""

from collections.abc import Sequence
from dataclasses import dataclass

from service.keying.normalise import normalise_prompt, scope_of
from service.keying.rag import RagSplitter


@dataclass(frozen=True)
class PromptKey:
    question: str  # whitespace-collapsed; embedded, and stored as the entry's prompt
    normalised: str  # case-folded question: the exact-match key
    scope: str


def prompt_key(
    splitter: RagSplitter,
    prompt: str,
    model: str | None,
    contexts: Sequence[str | None] = (),
    conversation: str = "",
    params: str = "",
    user: str = "",
) -> PromptKey:
    """The key of ``prompt`` (RAG blocks cut out into the scope) given beside ``contexts``."""
    split = splitter.split(prompt, contexts)
    question = split.question or prompt.strip()
    return PromptKey(
        question=question,
        normalised=normalise_prompt(question),
        scope=scope_of(model, split.contexts, conversation, params, user),
    )
