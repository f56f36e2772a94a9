"""Dyna-Cache as LangChain's LLM cache (``pip install 'dyna-cache[langchain]'``).

    from langchain_core.globals import set_llm_cache
    from dyna_cache.langchain import DynaCacheLLMCache

    set_llm_cache(DynaCacheLLMCache(redis_url="redis://localhost:6379"))

LangChain asks the cache with the prompt and ``llm_string`` (the model and its parameters,
serialised). The prompt is looked up semantically; ``llm_string`` joins the scope (as the
entries' model, by its SHA-256), so two models, or one model at two temperatures, never
share an answer. The generations are kept whole (LangChain's own serialisation, read back
with an allowlist of its output and message classes only), with the first one's text as the
entry's response, which the dashboard, the stats and an HTTP client see.

Audits are off unless asked (``audit_rate``): an audit asks the service's configured LLM
again, and here LangChain calls the model, not the cache.
"""

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumps, loads
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from dyna_cache.blocking import SyncSemanticCache
from dyna_cache.results import Hit
from service.settings import Settings

# the classes a stored answer may revive as (never a model, a prompt or a tool)
_REVIVABLE: list[type[Serializable]] = [
    Generation, GenerationChunk, ChatGeneration, ChatGenerationChunk, AIMessage, AIMessageChunk,
]  # fmt: skip
MESSAGE_FIELD = "langchain_generations"  # where the stored message keeps the generations


def model_scope(llm_string: str) -> str:
    """The entries' model for one ``llm_string``: its SHA-256 (it can be kilobytes long)."""
    return "langchain:" + hashlib.sha256(llm_string.encode()).hexdigest()[:40]


def question_and_context(prompt: str) -> tuple[str, str | None]:
    """What is looked up, and what joins the scope. A chat model's prompt is its messages
    serialised (``[{"lc": 1, ..., "kwargs": {"content": ...}}, ...]``): the last message's
    text is the question, the messages before it (system prompt, history) the context, so
    that the JSON around the text does not make unrelated questions look alike and two
    conversations share only what they share whole. A text model's prompt is the question."""
    try:
        messages = json.loads(prompt)
    except ValueError:
        return prompt, None
    if not isinstance(messages, list) or not messages:
        return prompt, None
    texts: list[tuple[str, str]] = []
    for message in messages:
        kwargs = message.get("kwargs") if isinstance(message, dict) else None
        if not isinstance(kwargs, dict):
            return prompt, None
        content = kwargs.get("content", "")
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
        texts.append((str(kwargs.get("type", "")), text))
    *earlier, (_, question) = texts
    if not question.strip():
        return prompt, None
    if not earlier:
        return question, None
    # by digest: a long history must not run into the prompt length limit
    return question, "messages:" + hashlib.sha256(json.dumps(earlier).encode()).hexdigest()


def generations_of(hit: Hit) -> list[Generation]:
    """What a HIT gives LangChain back: the generations as stored, or, for an entry stored
    another way (over HTTP, by the library), its response as one generation."""
    kept = (hit.message or {}).get(MESSAGE_FIELD)
    if isinstance(kept, str):
        try:
            with warnings.catch_warnings():  # "loads is in beta": ours to know, not the user's
                warnings.simplefilter("ignore", LangChainBetaWarning)
                revived = loads(kept, allowed_objects=_REVIVABLE)
        except (ValueError, TypeError, KeyError, json.JSONDecodeError):
            revived = None
        if isinstance(revived, list) and all(isinstance(g, Generation) for g in revived):
            return revived
    return [Generation(text=hit.response)]


def stored_message(return_val: Sequence[Generation]) -> tuple[str, dict[str, Any]]:
    """The entry's response text and message for LangChain's generations."""
    text = return_val[0].text if return_val else ""
    return text, {"role": "assistant", "content": text, MESSAGE_FIELD: dumps(list(return_val))}


class DynaCacheLLMCache(BaseCache):
    """LangChain's ``BaseCache`` over an in-process Dyna-Cache replica. Takes the
    service's settings and keyword overrides, as ``SemanticCache`` does, and a namespace."""

    def __init__(
        self, settings: Settings | None = None, *, namespace: str = "default", **overrides: Any
    ) -> None:
        overrides.setdefault("audit_rate", 0.0)
        self.cache = SyncSemanticCache(settings, namespace=namespace, **overrides).start()

    def close(self) -> None:
        self.cache.close()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        question, context = question_and_context(prompt)
        found = self.cache.check(question, model=model_scope(llm_string), context=context)
        return generations_of(found) if isinstance(found, Hit) else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        question, context = question_and_context(prompt)
        text, message = stored_message(return_val)
        self.cache.store(
            question, text, model=model_scope(llm_string), context=context, message=message
        )

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of the namespace (``namespace=`` another one)."""
        self.cache.clear(namespace=kwargs.get("namespace"))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        question, context = question_and_context(prompt)
        found = await self.cache.run_async(
            self.cache.cache.check(question, model=model_scope(llm_string), context=context)
        )
        return generations_of(found) if isinstance(found, Hit) else None

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        question, context = question_and_context(prompt)
        text, message = stored_message(return_val)
        await self.cache.run_async(
            self.cache.cache.store(
                question, text, model=model_scope(llm_string), context=context, message=message
            )
        )

    async def aclear(self, **kwargs: Any) -> None:
        await self.cache.run_async(self.cache.cache.clear(namespace=kwargs.get("namespace")))
