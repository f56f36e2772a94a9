"""``POST /v1/chat/completions``: the OpenAI-compatible face of the cache.

The request is keyed (``service/keying/chat_key.py``), then walks the query path like any query:
a HIT is answered from the stored completion, as a ``chat.completion`` or replayed as
chunks; a MISS goes to the upstream, whose answer the client gets unchanged. A streamed MISS
is relayed chunk by chunk as it arrives and stored only when the upstream finished it: an
upstream that breaks off (the clients then get an error event), or clients that all go away,
store nothing. Identical streamed misses share one upstream stream: on the leader's replica
each follower reads it as it arrives (``X-Cache: HIT``); on another replica a follower waits
for the stored answer and replays it.
Cache status travels in headers only (``X-Cache``, ``X-Cache-Similarity``,
``X-Cache-Entry``, ``Age``), never in the body.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from index.store.records import StoredEntry
from service.engine.coalescing import Followed
from service.engine.query_path import Found, Missed, Probe, QueryPath, Resolution
from service.engine.shared_stream import SharedStream
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
                return await self._pass_through(body, include_usage)
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
            return await self._pass_through(body, include_usage)
        # identical streamed misses share one upstream stream (on other replicas: its entry)
        key = probe.key
        shared = await self.queries.coalescer.share_stream(
            probe.ns, key.scope, key.normalised,
            lambda ended: self._stream_upstream(body, (probe, found), ended),
        )  # fmt: skip
        if isinstance(shared, Followed):
            self.queries.record(probe, Resolution.hit(probe, Found(shared.entry, 0.0)))
            chunks = chunks_of(
                new_completion_id(), body["model"], shared.entry.chat_completion(), include_usage
            )
            return self._stream(_replay(chunks), "HIT", shared.entry, 0.0)
        await shared.stream.first()  # an upstream failing before it: an HTTP error
        if not shared.leads:  # the leader's MISS is counted when its answer is kept
            self.queries.record_shared(probe)
        status: CacheStatus = "MISS" if shared.leads else "HIT"
        return self._stream(_read(shared.stream, include_usage), status, None, found.nearest)

    def _stream_upstream(
        self, body: dict[str, Any], keep: tuple[Probe, Missed] | None,
        ended: Callable[[], Awaitable[None]],
    ) -> SharedStream:  # fmt: skip
        """Start reading the upstream's stream into a SharedStream; with ``keep``, the answer
        is kept (for that lookup) when the stream completes."""
        shared = SharedStream()
        started = time.perf_counter()

        async def pump() -> None:
            assembler = StreamAssembler()
            try:
                async with aclosing(self.llm.stream_chat(body)) as upstream:
                    async for chunk in upstream:
                        assembler.add(chunk)
                        shared.publish(chunk)
                if keep is not None and assembler.finished:
                    await self._store_streamed(*keep, assembler, started)
                shared.finish()
            except (UpstreamFailed, UpstreamTimedOut) as error:
                log.warning("upstream stream failed: %s", error)
                shared.fail(error)
            except Exception as error:  # never leave a reader waiting forever
                log.exception("reading the upstream stream failed")
                shared.fail(UpstreamFailed(f"reading the upstream failed ({type(error).__name__})"))
            finally:
                await ended()

        shared.task = asyncio.create_task(pump(), name="shared-stream")
        return shared

    async def _pass_through(self, body: dict[str, Any], include_usage: bool) -> Response:
        """Relay the upstream's stream, keeping nothing (BYPASS)."""
        shared = self._stream_upstream(body, None, _nothing)
        await shared.first()
        return self._stream(_read(shared, include_usage), "BYPASS", None, None)

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


async def _read(shared: SharedStream, include_usage: bool) -> AsyncIterator[dict[str, str]]:
    """A shared upstream stream as this request's events (usage chunks if it asked)."""
    try:
        async for chunk in shared.follow():
            if chunk.get("choices") or include_usage:
                yield {"data": orjson.dumps(chunk).decode()}
    except (UpstreamFailed, UpstreamTimedOut) as error:
        yield {"data": _stream_error(error)}
        return
    yield {"data": "[DONE]"}


async def _nothing() -> None:
    return None


async def _replay(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, str]]:
    for chunk in chunks:
        yield {"data": orjson.dumps(chunk).decode()}
    yield {"data": "[DONE]"}


def _stream_error(error: Exception) -> str:
    code = "upstream_timeout" if isinstance(error, UpstreamTimedOut) else "upstream_error"
    return orjson.dumps(
        {"error": {"message": str(error), "type": "upstream_error", "code": code}}
    ).decode()
