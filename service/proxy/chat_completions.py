"""``POST /v1/chat/completions``: the OpenAI-compatible face of the cache.

The request is keyed (``service/keying/chat_key.py``), then walks the query path like any query:
a HIT is answered from the stored completion, as a ``chat.completion`` or replayed as
chunks; a MISS goes to the upstream, whose answer the client gets unchanged. A streamed MISS
is relayed chunk by chunk as it arrives and stored only when the upstream finished it: a
client that goes away, or an upstream that breaks off (the client then gets an error event),
stores nothing. Streamed misses are not coalesced (each relays its own upstream stream).
Cache status travels in headers only (``X-Cache``, ``X-Cache-Similarity``,
``X-Cache-Entry``, ``Age``), never in the body.
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from index.store.records import StoredEntry
from service.engine.query_path import Found, Missed, Probe, QueryPath, Resolution
from service.http.cache_headers import cache_headers
from service.keying.chat_key import ChatKey, chat_key
from service.keying.rag import RagSplitter
from service.llm.chat_format import StreamAssembler, chunks_of, completion_body, new_completion_id
from service.llm.client import LLMClient, LLMReply, UpstreamFailed, UpstreamTimedOut
from service.policy.cache_control import CacheControl
from service.policy.user_scope import EndUser
from service.policy.validation import validate_prompt
from service.schemas import CacheStatus, TenantSettings
from service.settings import Settings

log = logging.getLogger(__name__)


class ChatCompletions:
    def __init__(
        self, settings: Settings, queries: QueryPath, llm: LLMClient, splitter: RagSplitter
    ) -> None:
        self.settings = settings
        self.queries = queries
        self.llm = llm
        self.splitter = splitter

    async def respond(
        self,
        body: dict[str, Any],
        ns: str,
        tenant: TenantSettings | None,
        control: CacheControl,
        who: EndUser | None = None,
    ) -> Response:
        who = who or EndUser()
        keyed = (
            ChatKey(None, "per-user scope and no user named")
            if who.unknown
            else chat_key(self.splitter, body, self.settings.chat_max_temperature, who.partition)
        )
        streamed = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if keyed.key is None:
            log.debug("chat request bypasses the cache: %s", keyed.bypass_reason)
            started = time.perf_counter()
            if streamed:  # counted as it starts: its latency is the stream's
                self.queries.record_bypass(ns, started, None)
                return await self._relay(body, include_usage, "BYPASS")
            reply = await self.llm.chat(body)
            self.queries.record_bypass(ns, started, reply)
            return self._json(reply.payload or {}, "BYPASS")
        validate_prompt(keyed.key.question, self.settings.max_prompt_chars, "the question")
        probe = self.queries.probe(ns, keyed.key, body["model"], tenant, control)

        if not streamed:
            resolution = await self.queries.resolve(probe, lambda: self.llm.chat(body))
            if resolution.entry is not None:
                completion = resolution.entry.chat_completion()
                return self._json(
                    completion_body(completion, body["model"]), "HIT",
                    resolution.entry, resolution.distance,
                )  # fmt: skip
            assert resolution.reply is not None
            return self._json(
                resolution.reply.payload or {}, resolution.status, None, resolution.distance
            )

        found = await self.queries.find(probe)
        if isinstance(found, Found):
            self.queries.record(probe, Resolution.hit(probe, found))
            chunks = chunks_of(
                new_completion_id(), body["model"], found.entry.chat_completion(), include_usage
            )
            return self._stream(_replay(chunks), "HIT", found.entry, found.distance)
        if found is None:
            return await self._relay(body, include_usage, "BYPASS")
        return await self._relay(body, include_usage, "MISS", probe, found)

    async def _relay(
        self,
        body: dict[str, Any],
        include_usage: bool,
        status: CacheStatus,
        probe: Probe | None = None,
        missed: Missed | None = None,
    ) -> Response:
        """Relay the upstream's stream; store its answer (``probe``) if it completes. An
        upstream that fails before its first chunk is an HTTP error, not a stream."""
        started = time.perf_counter()
        upstream = self.llm.stream_chat(body)
        try:
            first = await anext(upstream)
        except StopAsyncIteration:
            raise UpstreamFailed("upstream stream was empty") from None
        except BaseException:
            await upstream.aclose()
            raise

        async def events() -> AsyncIterator[dict[str, str]]:
            assembler = StreamAssembler()
            async with aclosing(upstream):
                try:
                    chunk: dict[str, Any] | None = first
                    while chunk is not None:
                        assembler.add(chunk)
                        if chunk.get("choices") or include_usage:
                            yield {"data": orjson.dumps(chunk).decode()}
                        chunk = await anext(upstream, None)
                except (UpstreamFailed, UpstreamTimedOut) as error:
                    log.warning("upstream stream failed: %s", error)
                    yield {"data": _stream_error(error)}
                    return
            if probe is not None and missed is not None and assembler.finished:
                await self._store_streamed(probe, missed, assembler, started)
            yield {"data": "[DONE]"}

        return self._stream(events(), status, None, missed.nearest if missed else None)

    async def _store_streamed(
        self, probe: Probe, missed: Missed, assembler: StreamAssembler, started: float
    ) -> None:
        message = assembler.message()
        reply = LLMReply(
            text=message.get("content") or "",
            latency_ms=(time.perf_counter() - started) * 1000,
            model=assembler.model or probe.model,
            message=message,
            finish_reason=assembler.finish_reason or "stop",
            usage=assembler.usage,
        )
        await self.queries.keep_streamed(probe, missed, reply)

    # -- responses -------------------------------------------------------------------

    def _json(
        self,
        payload: dict[str, Any],
        status: CacheStatus,
        entry: StoredEntry | None = None,
        distance: float | None = None,
    ) -> Response:
        return JSONResponse(payload, headers=self._headers(status, entry, distance))

    def _stream(
        self,
        events: AsyncIterator[dict[str, str]],
        status: CacheStatus,
        entry: StoredEntry | None,
        distance: float | None,
    ) -> Response:
        return EventSourceResponse(events, headers=self._headers(status, entry, distance))

    def _headers(
        self, status: CacheStatus, entry: StoredEntry | None, distance: float | None
    ) -> dict[str, str]:
        return cache_headers(
            status, self.settings.replica_id, distance,
            entry.entry_id if entry else None, entry.created if entry else None,
        )  # fmt: skip


async def _replay(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, str]]:
    for chunk in chunks:
        yield {"data": orjson.dumps(chunk).decode()}
    yield {"data": "[DONE]"}


def _stream_error(error: Exception) -> str:
    code = "upstream_timeout" if isinstance(error, UpstreamTimedOut) else "upstream_error"
    return orjson.dumps(
        {"error": {"message": str(error), "type": "upstream_error", "code": code}}
    ).decode()
