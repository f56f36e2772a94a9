"""Dyna-Cache as LangChain's LLM cache (``pip install 'dyna-cache[langchain]'``):
``set_llm_cache(DynaCacheLLMCache(redis_url=...))``.

``llm_string`` (the model and its parameters) is the entries' model, so two models or two
temperatures never share an answer; the prompt is keyed as the HTTP proxy keys a chat
(``dyna_cache/chats.py``), and what cannot be keyed is a counted bypass (the cache never
breaks the call). Generations are kept whole and revived through an allowlist of LangChain's
output and message classes. Audits are off unless asked (``audit_rate``).
"""

import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumps, loads
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    convert_to_openai_messages,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from dyna_cache.blocking import SyncSemanticCache
from dyna_cache.chats import Chat, check_chat, store_chat
from dyna_cache.results import Hit
from index.store.connection import STORE_UNAVAILABLE
from service.errors import CacheError
from service.settings import Settings

log = logging.getLogger(__name__)

# the classes a stored answer may revive as (never a model, a prompt or a tool)
_REVIVABLE: list[type[Serializable]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
]
# the classes a chat model's prompt may revive as: its messages
_MESSAGES: list[type[Serializable]] = [
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
]
MESSAGE_FIELD = "langchain_generations"  # where the stored message keeps the generations


def model_scope(llm_string: str) -> str:
    """The entries' model for one ``llm_string``: its SHA-256 (it can be kilobytes long)."""
    return "langchain:" + hashlib.sha256(llm_string.encode()).hexdigest()[:40]


def chat_of(prompt: str, llm_string: str) -> Chat | None:
    """LangChain's prompt as a Chat Completions body, to be keyed as the proxy keys one: a
    chat model's prompt (its messages, serialised) as those messages, a text model's prompt
    as one user message. None: serialised messages that do not revive (not cached)."""
    model = model_scope(llm_string)
    if not _serialised_objects(prompt):
        return {"model": model, "messages": [{"role": "user", "content": prompt}]}
    try:
        with warnings.catch_warnings():  # "loads is in beta": ours to know, not the user's
            warnings.simplefilter("ignore", LangChainBetaWarning)
            messages = loads(prompt, allowed_objects=_MESSAGES)
        return {"model": model, "messages": convert_to_openai_messages(messages)}
    except (ValueError, TypeError, KeyError, NotImplementedError) as error:
        log.debug("a chat prompt that does not revive: %s", error)
        return None


def _serialised_objects(prompt: str) -> bool:
    """``prompt`` is a list of LangChain's serialised objects (a chat model's prompt)."""
    if not prompt.startswith("[{"):
        return False
    try:
        value = json.loads(prompt)
    except ValueError:
        return False
    return isinstance(value, list) and all(
        isinstance(item, dict) and item.get("lc") == 1 for item in value
    )


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
    service's settings and keyword overrides, as ``SemanticCache`` does, a namespace, and
    ``start_degraded`` (start even when Redis does not answer: every call then passes
    through to the model)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        namespace: str = "default",
        start_degraded: bool = False,
        **overrides: Any,
    ) -> None:
        overrides.setdefault("audit_rate", 0.0)
        self.cache = SyncSemanticCache(
            settings, namespace=namespace, start_degraded=start_degraded, **overrides
        ).start()

    def close(self) -> None:
        self.cache.close()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.cache.run(self._lookup(prompt, llm_string))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.cache.run(self._update(prompt, llm_string, return_val))

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of the namespace (``namespace=`` another one)."""
        self.cache.clear(namespace=kwargs.get("namespace"))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await self.cache.run_async(self._lookup(prompt, llm_string))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await self.cache.run_async(self._update(prompt, llm_string, return_val))

    async def aclear(self, **kwargs: Any) -> None:
        await self.cache.run_async(self.cache.cache.clear(namespace=kwargs.get("namespace")))

    async def _lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        found = await check_chat(self.cache.cache, chat_of(prompt, llm_string))
        return generations_of(found) if isinstance(found, Hit) else None

    async def _update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Keep the generations (nothing for a chat that is not cached). A store that fails
        (Redis not answering, an answer past the size limit) is logged, never raised: the
        model's answer stands."""
        text, message = stored_message(return_val)
        try:
            await store_chat(self.cache.cache, chat_of(prompt, llm_string), text, message)
        except (CacheError, *STORE_UNAVAILABLE) as error:
            log.warning("LangChain's answer was not stored (%s): %s", type(error).__name__, error)
