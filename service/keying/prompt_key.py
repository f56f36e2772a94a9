"""What a prompt is cached under: the question that is embedded, its exact-match form, and
the scope (everything else a HIT must share)."""

from collections.abc import Sequence
from dataclasses import dataclass

from index.decision.courtesy import canonical, is_prompt
from service.keying.normalise import normalise_prompt, scope_of
from service.keying.rag import RagSplitter


@dataclass(frozen=True)
class PromptKey:
    question: str  # whitespace-collapsed; embedded, and stored as the entry's prompt
    normalised: str  # the exact-match key (``exact_form``)
    scope: str
    prompt: bool = False  # a prompt, not a question: served only as the same request


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
        normalised=exact_form(question),
        scope=scope_of(model, split.contexts, conversation, params, user),
        prompt=is_prompt(question),
    )


def exact_form(question: str) -> str:
    """The exact-match key of a question: case-folded, whitespace collapsed; of a prompt
    (long, or several sentences), its canonical form, courtesy aside
    (``index/decision/courtesy.py``), so that a greeting or a thanks is the same request."""
    return canonical(question) if is_prompt(question) else normalise_prompt(question)
