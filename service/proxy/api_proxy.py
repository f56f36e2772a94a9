"""The proxy of every client API: a request keyed by its dialect walks the query path.

A HIT is answered from the stored answer, whole or streamed; a MISS goes upstream and the
client gets its answer unchanged. A streamed MISS is relayed as it arrives and stored only
when finished; identical streamed misses share one upstream stream. Cache status travels in
headers only (``X-Cache``, ...). The upstream request is the lookup's replay (what an audit
sends again). Shadow mode answers from upstream and says what the cache would have done.
Answers are neutral shapes (``JsonAnswer``, ``StreamAnswer``): no web framework here.
"""

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from index.store.records import StoredEntry
from service.engine.cache_headers import cache_headers
from service.engine.coalescing import Followed
from service.engine.probe import Asks, Probe
from service.engine.query_path import QueryPath
from service.engine.resolution import Found, Missed, Resolution
from service.engine.shared_stream import SharedStream
from service.keying.chat_key import ChatKey
from service.llm.client import UpstreamFailed, UpstreamTimedOut
from service.policy.cache_control import CacheControl
from service.policy.user_scope import EndUser
from service.policy.validation import validate_prompt
from service.proxy.dialect import Dialect, Event, Sse
from service.schemas import CacheStatus, ServingMode, TenantSettings
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JsonAnswer:
    """A whole answer: the body and its cache headers (the HTTP layer sends it as JSON)."""

    payload: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class StreamAnswer:
    """A streamed answer: its server-sent events and cache headers."""

    events: AsyncIterator[Sse]
    headers: dict[str, str]


Answer = JsonAnswer | StreamAnswer


class ApiProxy:
    def __init__(self, settings: Settings, queries: QueryPath, dialect: Dialect) -> None:
        self.settings = settings
        self.queries = queries
        self.dialect = dialect

    async def respond(
        self,
        body: dict[str, Any],
        ns: str,
        tenant: TenantSettings | None,
        control: CacheControl,
        who: EndUser | None = None,
        ttl: int | None = None,
        mode: ServingMode | None = None,
    ) -> Answer:
        """Answer a client API's request through the cache (``ttl``: how long a MISS's
        answer lives, when the request asked; ``mode``: serve or shadow, when it asked)."""
        dialect = self.dialect
        who = who or EndUser()
        keyed = (
            ChatKey(None, "per-user scope and no user named")
            if who.unknown
            else dialect.key(body, who.partition)
        )
        streamed = dialect.streamed(body)
        if keyed.key is None:
            log.debug("%s request bypasses the cache: %s", dialect.name, keyed.bypass_reason)
            started = time.perf_counter()
            if streamed:  # counted as it starts: its latency is the stream's
                self.queries.outcomes.record_bypass(ns, started, None)
                return await self._pass_through(body)
            reply = await dialect.call(body)
            bypassed = self.queries.outcomes.record_bypass(ns, started, reply)
            return self._json(reply.payload or {}, "BYPASS", timing=bypassed.server_timing)
        validate_prompt(keyed.key.question, self.settings.max_prompt_chars, "the question")
        # the request as the upstream gets it (whole), which an audit of a HIT sends again
        ask = functools.partial(dialect.call, body)
        asks = Asks(ttl=ttl, replay=ask, personal=who.personal, serving=mode)
        model = str(body.get("model") or "")
        probe = self.queries.probes.probe(ns, keyed.key, model, tenant, control, asks)

        if not streamed:
            resolution = await self.queries.resolve(probe, ask)
            if resolution.status == "HIT" and resolution.entry is not None:
                answer = dialect.answer(resolution.entry.chat_completion(), body)
                return self._json(
                    answer,
                    "HIT",
                    resolution.entry,
                    resolution.distance,
                    timing=resolution.server_timing,
                )
            assert resolution.reply is not None
            entry = resolution.entry  # SHADOW-HIT: the one that would have served
            return self._json(
                resolution.reply.payload or {},
                resolution.status,
                None,
                resolution.distance,
                entry.entry_id if entry else resolution.entry_id,
                resolution.server_timing,
                resolution.refused_by,
            )

        found = await self.queries.find(probe)
        if found is not None and probe.shadow:  # the upstream answers, as with no cache
            shadowed = self._stream_upstream(body, (probe, found), _nothing)
            await shadowed.first()
            status: CacheStatus = "SHADOW-HIT" if isinstance(found, Found) else "SHADOW-MISS"
            distance = found.distance if isinstance(found, Found) else found.nearest
            timing = probe.times.server_timing((time.perf_counter() - probe.started) * 1000)
            return self._stream(self._read(shadowed, body), status, None, distance, timing)
        if isinstance(found, Found):
            served = self.queries.outcomes.record(probe, Resolution.hit(probe, found))
            return self._replay(found.entry, found.distance, body, served.server_timing)
        if found is None:
            return await self._pass_through(body)
        # identical streamed misses share one upstream stream (on other replicas: its entry)
        key = probe.key
        shared = await self.queries.coalescer.share_stream(
            probe.ns,
            key.scope,
            key.normalised,
            lambda ended: self._stream_upstream(body, (probe, found), ended),
            lambda entry: self.queries.servable(entry, 0.0, probe),
        )
        if isinstance(shared, Followed):
            followed = Resolution.hit(probe, Found(shared.entry, 0.0))
            served = self.queries.outcomes.record(probe, followed)
            return self._replay(shared.entry, 0.0, body, served.server_timing)
        await shared.stream.first()  # an upstream failing before it: an HTTP error
        if not shared.leads:  # the leader's MISS is counted when its answer is kept
            self.queries.outcomes.record_shared(probe)
        status = "MISS" if shared.leads else "HIT"
        timing = probe.times.server_timing((time.perf_counter() - probe.started) * 1000)
        refused = found.refused_by if shared.leads else None
        events = self._read(shared.stream, body)
        return self._stream(events, status, None, found.nearest, timing, refused)

    def _stream_upstream(
        self,
        body: dict[str, Any],
        keep: tuple[Probe, Found | Missed] | None,
        ended: Callable[[], Awaitable[None]],
    ) -> SharedStream:
        """Start reading the upstream's stream into a SharedStream; with ``keep``, the answer
        is kept (for that lookup; in shadow mode a would-be HIT's is compared) when the
        stream completes."""
        shared = SharedStream()
        started = time.perf_counter()
        dialect = self.dialect

        async def pump() -> None:
            assembler = dialect.assembler()
            try:
                async with aclosing(dialect.stream(body)) as upstream:
                    async for event in upstream:
                        assembler.add(event)
                        shared.publish(event)
                if keep is not None and assembler.finished:
                    probe, found = keep
                    latency_ms = (time.perf_counter() - started) * 1000
                    reply = assembler.reply(latency_ms, probe.model)
                    await self.queries.keep_streamed(probe, found, reply)
                shared.finish()
            except (UpstreamFailed, UpstreamTimedOut) as error:
                log.warning("upstream stream failed: %s", error)
                shared.fail(error)
            except Exception as error:  # never leave a reader waiting forever
                log.exception("reading the upstream stream failed")
                shared.fail(UpstreamFailed(f"reading the upstream failed ({type(error).__name__})"))
            finally:
                await ended()

        shared.task = asyncio.create_task(pump(), name=f"shared-stream-{dialect.name}")
        return shared

    async def _pass_through(self, body: dict[str, Any]) -> Answer:
        """Relay the upstream's stream, keeping nothing (BYPASS)."""
        shared = self._stream_upstream(body, None, _nothing)
        await shared.first()
        return self._stream(self._read(shared, body), "BYPASS", None, None)

    def _read(self, shared: SharedStream, body: dict[str, Any]) -> AsyncIterator[Sse]:
        """A shared upstream stream as this request's events."""
        return self._as_sse(shared.follow(), body)

    async def _as_sse(
        self, events: AsyncIterator[Event], body: dict[str, Any]
    ) -> AsyncIterator[Sse]:
        """Events as sent to this client, then the API's end (or its error event)."""
        try:
            async for event in events:
                sse = self.dialect.sse(event, body)
                if sse is not None:
                    yield sse
        except (UpstreamFailed, UpstreamTimedOut) as error:
            yield self.dialect.stream_error(error)
            return
        for sse in self.dialect.stream_end():
            yield sse

    def _replay(
        self, entry: StoredEntry, distance: float, body: dict[str, Any], timing: str
    ) -> Answer:
        events = self.dialect.replay(entry.chat_completion(), body)

        async def replayed() -> AsyncIterator[Event]:
            for event in events:
                yield event

        return self._stream(self._as_sse(replayed(), body), "HIT", entry, distance, timing)

    # -- answers ---------------------------------------------------------------------

    def _json(
        self,
        payload: dict[str, Any],
        status: CacheStatus,
        entry: StoredEntry | None = None,
        distance: float | None = None,
        stored_as: str | None = None,
        timing: str | None = None,
        refused_by: str | None = None,
    ) -> Answer:
        """``stored_as``: the entry a MISS was kept as; ``timing``: its Server-Timing;
        ``refused_by``: what refused a MISS's nearest candidate."""
        headers = self._headers(status, entry, distance, stored_as, timing, refused_by)
        return JsonAnswer(payload, headers)

    def _stream(
        self,
        events: AsyncIterator[Sse],
        status: CacheStatus,
        entry: StoredEntry | None,
        distance: float | None,
        timing: str | None = None,
        refused_by: str | None = None,
    ) -> Answer:
        """``timing``: the stages before the stream started (a stream's own time is its)."""
        headers = self._headers(status, entry, distance, None, timing, refused_by)
        return StreamAnswer(events, headers)

    def _headers(
        self,
        status: CacheStatus,
        entry: StoredEntry | None,
        distance: float | None,
        stored_as: str | None = None,
        timing: str | None = None,
        refused_by: str | None = None,
    ) -> dict[str, str]:
        return cache_headers(
            status,
            self.settings.replica_id,
            distance,
            entry.entry_id if entry else stored_as,
            entry.created if entry else None,
            timing,
            refused_by,
        )


async def _nothing() -> None:
    return None
