"""A chat looked up and stored in process under the HTTP proxy's key.

A chat is a Chat Completions body (``model`` and ``messages``), keyed by the proxy's own
``service/keying/chat_key.py``: the last user message's text is the question; roles, the
turns around it (system prompts, history, assistant tool calls with their arguments, tool
results, names, the non-text parts of earlier turns) join the scope. What that key does not
take is a bypass: a last user message with non-text parts (an image), no user message, a
question that is empty or past the length limit, per-user scope with no user. A bypass is
counted and returns None, never an error: an adapter in front of an LLM call
(``dyna_cache.langchain``) must not break the call.
"""

import logging
import time
from typing import Any

from dyna_cache.cache import SemanticCache, reply_of
from dyna_cache.results import Hit, Miss, result_of
from service.engine.probe import Asks, Probe
from service.errors import InvalidInput
from service.keying.chat_key import chat_key
from service.llm.client import LLMReply
from service.policy.cache_control import CacheControl
from service.policy.user_scope import ScopeAsked, end_user
from service.policy.validation import validate_prompt, validate_response
from service.schemas import CacheMode

log = logging.getLogger(__name__)

Chat = dict[str, Any]  # a Chat Completions body: model, messages (and its parameters)


async def check_chat(
    cache: SemanticCache, chat: Chat | None, *, namespace: str | None = None
) -> Hit | Miss | None:
    """``chat``'s stored answer, or a Miss; None: the chat is not cached (a bypass, counted).
    ``chat`` None: the caller could not read its prompt as a chat (a bypass too)."""
    started = time.perf_counter()
    probe = await _probe(cache, chat, namespace, "only")
    queries = cache._running().queries
    if isinstance(probe, str):
        log.debug("a chat bypasses the cache: %s", probe)
        queries.outcomes.record_bypass(cache._namespace(namespace), started, None)
        return None
    return result_of(probe.ns, await queries.resolve(probe, _not_asked))


async def store_chat(
    cache: SemanticCache,
    chat: Chat | None,
    response: str,
    message: dict[str, Any] | None = None,
    *,
    namespace: str | None = None,
) -> str | None:
    """Keep ``response`` (and the assistant ``message``) as ``chat``'s answer; the entry's
    id, or None when the chat is not cached. A response past the size limit is
    ``InvalidInput``; Redis not answering raises redis-py's errors."""
    probe = await _probe(cache, chat, namespace, "default")
    if isinstance(probe, str):
        return None
    validate_response(response, cache.settings.max_response_chars)
    queries = cache._running().queries
    vector = (await queries.embedder.embed([probe.key.question]))[0]
    kept = await queries.keep(probe, vector, reply_of(response, probe.model, 0.0, message))
    return kept.entry_id if kept else None


async def _probe(
    cache: SemanticCache, chat: Chat | None, namespace: str | None, mode: CacheMode
) -> Probe | str:
    """The lookup of ``chat``, or why it is not cached."""
    if chat is None:
        return "a prompt that does not read as a chat"
    runtime, ns = cache._running(), cache._namespace(namespace)
    settings, tenant = cache.settings, await cache._tenant(ns)
    who = end_user(ScopeAsked(), tenant, settings.scope_mode)
    if who.unknown:
        return "per-user scope and no user named"
    try:
        keyed = chat_key(
            runtime.queries.probes.splitter, chat, settings.chat_max_temperature, who.partition
        )
        if keyed.key is None:
            return keyed.bypass_reason or "not keyed"
        validate_prompt(keyed.key.question, settings.max_prompt_chars, "the question")
    except InvalidInput as refused:
        return refused.message
    except (TypeError, ValueError, KeyError) as error:  # a part orjson cannot write, ...
        return f"a chat that cannot be keyed ({type(error).__name__}: {error})"
    model = str(chat.get("model") or "")
    return runtime.queries.probes.probe(ns, keyed.key, model, tenant, CacheControl(), Asks(mode))


async def _not_asked() -> LLMReply:
    raise AssertionError("a lookup (cache 'only') never asks an LLM")
