"""The path of one query, top to bottom:

normalise → scope → exact match → embed → search (FAISS, or the Redis HNSW mirror while the
local index is not ready) → confirm in Redis → serve; or call the LLM (once for identical
misses in flight) → store → publish.

Redis failing at any step turns the request into a pass-through to the LLM (``BYPASS``);
the LLM failing gives 502/504 and stores nothing.
"""

import logging
import time

import numpy as np
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from index.distance import is_hit, resolve_threshold, similarity
from index.embedding_worker import EmbeddingWorker
from index.keys import exact_key
from index.local_index import LocalIndex
from index.redis_store import NewEntry, RedisStore, StoredEntry
from index.replica_sync import ReplicaSync
from service.cache_control import CacheControl
from service.coalescing import Followed, MissCoalescer
from service.errors import ApiError
from service.llm import LLMClient, LLMReply, UpstreamFailed, UpstreamTimedOut
from service.normalise import collapse_whitespace, normalise_prompt, scope_of
from service.schemas import CacheStatus, QueryRequest, QueryResponse, TenantSettings
from service.settings import Settings
from service.telemetry import Telemetry
from service.tenants import effective_threshold, retention_for
from service.validation import validate_context, validate_prompt

log = logging.getLogger(__name__)


class QueryPath:
    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        index: LocalIndex,
        sync: ReplicaSync,
        embedder: EmbeddingWorker,
        llm: LLMClient,
        telemetry: Telemetry,
        coalescer: MissCoalescer,
    ) -> None:
        self.settings = settings
        self.store = store
        self.index = index
        self.sync = sync
        self.embedder = embedder
        self.llm = llm
        self.telemetry = telemetry
        self.coalescer = coalescer

    async def answer(
        self,
        request: QueryRequest,
        ns: str,
        tenant: TenantSettings | None = None,
        control: CacheControl | None = None,
    ) -> QueryResponse:
        started = time.perf_counter()
        control = control or CacheControl()
        validate_prompt(request.prompt, self.settings.max_prompt_chars)
        validate_context(request.context, self.settings.max_prompt_chars)
        question = collapse_whitespace(request.prompt)
        normalised = normalise_prompt(request.prompt)
        scope = scope_of(request.model, request.context)
        threshold = resolve_threshold(
            request.threshold, effective_threshold(self.settings.threshold, tenant)
        )
        retention = retention_for(self.settings, tenant, request.ttl, request.ttl_policy)
        mode = "refresh" if control.no_cache and request.cache == "default" else request.cache

        if mode == "bypass":
            passed = await self._call_llm(question, request.model)
            return self._pass_through(ns, started, passed, record=True)

        reply: LLMReply | None = None
        try:
            nearest: float | None = None
            if mode != "refresh":
                exact = await self._exact_entry(ns, scope, normalised)
                if exact is not None and control.fresh_enough(exact.age_s(time.time())):
                    return self._serve_hit(ns, started, exact, distance=0.0)

            vector = await self.embedder.embed_one(question)

            if mode != "refresh":
                match, nearest = await self._nearest_live_entry(
                    ns, scope, vector, threshold, control
                )
                if match is not None:
                    entry, distance = match
                    return self._serve_hit(ns, started, entry, distance)

            if mode == "only":
                return self._miss(ns, started, None, nearest, reply=None)

            async def call_llm_and_store() -> str | None:
                nonlocal reply
                reply = await self._call_llm(question, request.model)
                if control.no_store:
                    return None
                written = await self.store.write(
                    NewEntry(
                        ns=ns,
                        scope=scope,
                        model=request.model or "",
                        prompt=request.prompt,
                        normalised_prompt=normalised,
                        response=reply.text,
                        vector=vector,
                        llm_ms=reply.latency_ms,
                        cost=self.settings.price_per_call_usd,
                        retention=retention,
                    )
                )
                self.index.add(written)
                return written.entry_id

            if mode == "refresh" or control.no_store:
                entry_id = await call_llm_and_store()
            else:  # identical misses in flight, here or on other replicas, share one call
                outcome = await self.coalescer.run(ns, scope, normalised, call_llm_and_store)
                if isinstance(outcome, Followed):
                    return self._serve_hit(ns, started, outcome.entry, distance=0.0)
                entry_id = outcome.result
            return self._miss(ns, started, entry_id, nearest, reply)
        except (RedisConnectionError, RedisTimeoutError) as error:
            log.warning("Redis unavailable (%s): passing the query through", type(error).__name__)
            if mode == "only":
                return self._miss(ns, started, None, None, reply=None, record=False)
            if reply is None:
                reply = await self._call_llm(question, request.model)
            return self._pass_through(ns, started, reply, record=False)

    async def _exact_entry(self, ns: str, scope: str, normalised: str) -> StoredEntry | None:
        """The live entry stored for exactly this prompt. A ready replica knows every exact
        key it holds, so only a known one costs a Redis read (the confirm); while loading,
        Redis's own pointer answers."""
        if not self.sync.ready:
            return await self.store.lookup_exact(ns, scope, normalised)
        entry_id = self.index.exact_entry(exact_key(ns, scope, normalised))
        if entry_id is None:
            return None
        entry = await self.store.get(ns, entry_id)
        if entry is None:
            self.index.remove(entry_id)
        return entry

    async def _nearest_live_entry(
        self, ns: str, scope: str, vector: np.ndarray, threshold: float, control: CacheControl
    ) -> tuple[tuple[StoredEntry, float] | None, float | None]:
        """The nearest candidate under the threshold that Redis still holds (and that is young
        enough for ``max-age``), and the distance of the nearest candidate at all. Candidates
        that Redis no longer holds are dropped from the local index."""
        k = self.settings.top_k
        if self.sync.ready:
            candidates = self.index.search(ns, scope, vector, k)
        else:
            candidates = await self.store.knn(ns, scope, vector, k)
        nearest = candidates[0].distance if candidates else None
        for candidate in candidates:
            if not is_hit(candidate.distance, threshold):
                break
            entry = await self.store.get(ns, candidate.entry_id)
            if entry is None:
                self.index.remove(candidate.entry_id)
            elif control.fresh_enough(entry.age_s(time.time())):
                return (entry, candidate.distance), nearest
        return None, nearest

    async def _call_llm(self, prompt: str, model: str | None) -> LLMReply:
        try:
            return await self.llm.complete(prompt, model)
        except UpstreamTimedOut as error:
            raise ApiError(504, "upstream_timeout", str(error)) from error
        except UpstreamFailed as error:
            raise ApiError(502, "upstream_error", str(error)) from error

    # -- answers -----------------------------------------------------------------------

    def _serve_hit(
        self, ns: str, started: float, entry: StoredEntry, distance: float
    ) -> QueryResponse:
        latency_ms = _elapsed_ms(started)
        self.telemetry.record(
            ns, "hit", latency_ms,
            served=(ns, entry.entry_id),
            llm_ms_saved=entry.llm_ms if entry.llm_ms > 0 else latency_ms,
            cost_saved=entry.cost,
        )  # fmt: skip
        return QueryResponse(
            response=entry.response,
            status="HIT",
            distance=distance,
            similarity=similarity(distance),
            matched_prompt=entry.prompt,
            entry_id=entry.entry_id,
            latency_ms=latency_ms,
            llm_latency_ms=None,
            namespace=ns,
            created=entry.created,
            expires_at=entry.expires_at,
        )

    def _miss(
        self,
        ns: str,
        started: float,
        entry_id: str | None,
        nearest: float | None,
        reply: LLMReply | None,
        record: bool = True,
    ) -> QueryResponse:
        return self._answer(ns, started, "MISS", entry_id, nearest, reply, record)

    def _pass_through(
        self, ns: str, started: float, reply: LLMReply, record: bool
    ) -> QueryResponse:
        return self._answer(ns, started, "BYPASS", None, None, reply, record)

    def _answer(
        self,
        ns: str,
        started: float,
        status: CacheStatus,
        entry_id: str | None,
        nearest: float | None,
        reply: LLMReply | None,
        record: bool,
    ) -> QueryResponse:
        latency_ms = _elapsed_ms(started)
        if record:
            self.telemetry.record(ns, "miss" if status == "MISS" else "bypass", latency_ms)
        return QueryResponse(
            response=reply.text if reply else None,
            status=status,
            distance=nearest,
            similarity=similarity(nearest) if nearest is not None else None,
            matched_prompt=None,
            entry_id=entry_id,
            latency_ms=latency_ms,
            llm_latency_ms=reply.latency_ms if reply else None,
            namespace=ns,
        )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
