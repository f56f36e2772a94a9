"""The path of one query, top to bottom: probe → exact match → embed → nearest candidates →
the decision (``index/decision``) → serve; or call the LLM (once for identical misses in
flight) → keep (which publishes). In shadow mode the same lookup and decision, then the LLM
answers whatever they found (``shadow.py`` counts what would have been served). Each step
against the vector side is one call of its one door (``index/lookup.py``). What watches the
path without steering it (telemetry, audits, shadow counts, an outage's pass-through) is in
``outcomes.py``; the request → tenant → service choices in ``probe.py``; the result types
in ``resolution.py``.

Redis failing at any step turns the request into a pass-through to the LLM (``BYPASS``);
this module is the one place that decides so. The LLM failing raises ``UpstreamFailed`` /
``UpstreamTimedOut`` (502/504 over HTTP) and stores nothing.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np

from index.decision.courtesy import courtesy_variants
from index.decision.decide import Decision, unusable
from index.decision.verdict import Asked
from index.embedding.worker import EmbeddingWorker
from index.lookup import VectorSide
from index.store.connection import STORE_UNAVAILABLE
from index.store.records import Candidate, NewEntry, StoredEntry
from service.engine.coalescing import Followed, MissCoalescer
from service.engine.outcomes import Outcomes, store_unavailable
from service.engine.probe import Probe, Probes
from service.engine.resolution import Found, Kept, Missed, Resolution
from service.errors import InvalidInput
from service.llm.client import LLMClient, LLMReply, Produce, complete
from service.policy.cache_control import CacheControl
from service.policy.user_scope import EndUser
from service.policy.validation import validate_response
from service.schemas import QueryRequest, TenantSettings
from service.settings import Settings

log = logging.getLogger(__name__)


class QueryPath:
    def __init__(
        self,
        settings: Settings,
        vectors: VectorSide,
        embedder: EmbeddingWorker,
        llm: LLMClient,
        probes: Probes,
        decision: Decision,
        coalescer: MissCoalescer,
        outcomes: Outcomes,
    ) -> None:
        self.settings = settings
        self.vectors = vectors
        self.embedder = embedder
        self.llm = llm
        self.probes = probes
        self.decision = decision
        self.coalescer = coalescer
        self.outcomes = outcomes

    async def answer(
        self,
        request: QueryRequest,
        ns: str,
        tenant: TenantSettings | None = None,
        control: CacheControl | None = None,
        who: EndUser | None = None,
        produce: Callable[[str], Awaitable[LLMReply]] | None = None,
        replayable: bool = True,
    ) -> Resolution:
        """``POST /v1/query`` or the library's lookup; a miss asks ``produce`` (the question;
        default: the LLM), and an audit of a HIT asks it again unless not ``replayable``."""
        probe = self.probes.for_request(request, ns, tenant, control, who)
        if probe.mode == "bypass" and request.cache == "only":
            # per-user scope and no user named: nothing to look up, and "only" never asks
            return self.outcomes.record(probe, Resolution.miss(probe, None))

        async def ask() -> LLMReply:
            if produce is None:
                return await complete(self.llm, probe.key.question, request.model)
            return await produce(probe.key.question)

        return await self.resolve(replace(probe, replay=ask if replayable else None), ask)

    async def resolve(self, probe: Probe, produce: Produce) -> Resolution:
        """Serve ``probe`` from the cache, or from ``produce`` (the LLM) and keep that; the
        outcome is recorded. Redis not answering: passed through to ``produce``."""
        produce = _once(probe, produce)  # an outage after the LLM answered reuses its reply
        try:
            if probe.mode == "bypass":
                reply = await produce()
                return self.outcomes.record(
                    probe, Resolution.bypass(probe.started, reply, probe.times)
                )
            if probe.shadow:
                return self.outcomes.record(probe, await self._shadow(probe, produce))
            found = await self.look_up(probe)
            if isinstance(found, Found):
                return self.outcomes.record(probe, Resolution.hit(probe, found))
            if probe.mode == "only":
                return self.outcomes.record(probe, Resolution.miss(probe, found))
            return self.outcomes.record(probe, await self._fill(probe, found, produce))
        except STORE_UNAVAILABLE as error:
            return await self._pass_through(probe, produce, error)
        except BaseException as error:  # the LLM failed, cancelled, a bug: on its trace
            if probe.times.span is not None:
                probe.times.span.fail(probe.ns, error)
            raise

    async def look_up(self, probe: Probe) -> Found | Missed:
        """The live entry that answers ``probe`` (exact, else the nearest candidate the
        decision serves), or the query's vector for keeping a new one."""
        key, times = probe.key, probe.times
        self.vectors.asked_for(probe.ns)
        if probe.mode != "refresh":
            with times.measure("redis"):
                exact = await self._exact(probe)
            if exact is not None:
                return exact
            if key.prompt:  # served only as the same request: nothing to embed to look it up
                return Missed(None, None)
        with times.measure("embed"):
            vector = await self.embedder.embed_one(key.question)
        if probe.mode == "refresh":
            return Missed(vector, None)
        with times.measure("search"):
            candidates = await self.vectors.nearest(
                probe.ns, key.scope, vector, self.settings.top_k
            )
        asked = Asked(probe.ns, key.question, vector)
        verdict = await self.decision.decide(
            asked, probe.terms, candidates, self._confirm(probe), lambda: times.measure("verify")
        )
        if verdict.entry is not None and verdict.distance is not None:
            return Found(verdict.entry, verdict.distance, verdict.confidence)
        return Missed.of(vector, verdict)

    async def _exact(self, probe: Probe) -> Found | None:
        """The entry stored for this very request: its exact form, and for a prompt each
        form it shares with one that differs by courtesy alone."""
        key = probe.key
        forms = courtesy_variants(key.question) if key.prompt else []
        for form in dict.fromkeys([key.normalised, *forms]):
            entry = await self.vectors.exact(probe.ns, key.scope, form)
            if entry is not None and self.servable(entry, 0.0, probe):
                return Found(entry, 0.0)
        return None

    async def _shadow(self, probe: Probe, produce: Produce) -> Resolution:
        """Shadow mode: looked up and decided as if serving, answered by the LLM as if
        there were no cache; a would-be MISS's answer is kept as a MISS's is."""
        found = await self.look_up(probe)
        if isinstance(found, Found):
            return Resolution.shadow_hit(probe, found, await produce())
        return replace(await self._fill(probe, found, produce), status="SHADOW-MISS")

    async def _fill(self, probe: Probe, missed: Missed, produce: Produce) -> Resolution:
        """A MISS: the LLM's answer, kept; identical misses in flight (here or on other
        replicas) share one call unless the request refreshes or keeps nothing."""
        reply: LLMReply | None = None

        async def call_and_keep() -> Kept | None:
            nonlocal reply
            reply = await produce()
            kept = await self.keep(probe, missed.vector, reply)
            self.outcomes.withheld(probe, missed, reply, kept)
            return kept

        # shadow mode: every request its own call, as if there were no cache
        if probe.mode == "refresh" or probe.control.no_store or probe.shadow:
            kept = await call_and_keep()
            return Resolution.miss(probe, missed, reply, kept)
        key = probe.key
        outcome = await self.coalescer.run(
            probe.ns,
            key.scope,
            key.normalised,
            call_and_keep,
            lambda entry: self.servable(entry, 0.0, probe),
        )
        if isinstance(outcome, Followed):
            return Resolution.hit(probe, Found(outcome.entry, 0.0))
        return Resolution.miss(probe, missed, reply, outcome.result)

    async def _pass_through(self, probe: Probe, produce: Produce, error: Exception) -> Resolution:
        """Redis did not answer: the LLM answers (``only``: a MISS), nothing is kept."""
        if probe.mode == "only":
            store_unavailable(error, "a cache-only query misses")
            return Resolution.miss(probe, None)
        bypassed = Resolution.bypass(probe.started, await produce(), probe.times)
        self.outcomes.outage(probe, error, "passing the query through")
        return bypassed

    def _confirm(self, probe: Probe) -> Callable[[Candidate], Awaitable[StoredEntry | None]]:
        async def confirm(candidate: Candidate) -> StoredEntry | None:
            with probe.times.measure("redis"):
                return await self.vectors.confirm(probe.ns, candidate.entry_id)

        return confirm

    async def find(self, probe: Probe) -> Found | Missed | None:
        """:meth:`look_up`, or None when Redis does not answer (then the caller passes the
        request through; it is counted here, as it starts)."""
        try:
            return await self.look_up(probe)
        except STORE_UNAVAILABLE as error:
            self.outcomes.outage(probe, error, "passing the query through")
            return None

    async def keep_streamed(
        self, probe: Probe, found: Found | Missed, reply: LLMReply
    ) -> Resolution:
        """Keep an answer the caller relayed itself (a stream that finished), and record the
        miss (in shadow mode, a would-be HIT: recorded, nothing kept); with Redis not
        answering, the answer is not kept."""
        if isinstance(found, Found):
            return self.outcomes.record(probe, Resolution.shadow_hit(probe, found, reply))
        missed = found
        try:
            kept = await self.keep(probe, missed.vector, reply)
        except STORE_UNAVAILABLE as error:
            store_unavailable(error, "the streamed answer is not stored")
            kept = None
        self.outcomes.withheld(probe, missed, reply, kept)
        resolution = Resolution.miss(probe, missed, reply, kept)
        if probe.shadow:
            resolution = replace(resolution, status="SHADOW-MISS")
        return self.outcomes.record(probe, resolution)

    async def store_answer(
        self, request: QueryRequest, ns: str, reply: LLMReply, tenant: TenantSettings | None = None
    ) -> Kept:
        """Keep ``reply`` as the answer to ``request``, as its MISS would have (same scope,
        retention, write and event): the library's ``store``."""
        probe = self.probes.for_request(request, ns, tenant, None, None)
        if probe.mode == "bypass":
            raise InvalidInput(
                "user_required", "entries are kept per user in this namespace: name the user"
            )
        validate_response(reply.text, self.settings.max_response_chars, "response")
        vector = (await self.embedder.embed([probe.key.question]))[0]
        kept = await self.keep(probe, vector, reply)
        if kept is None:
            raise InvalidInput("not_storable", "this answer cannot be kept (see its flags)")
        return kept

    @staticmethod
    def servable(entry: StoredEntry, distance: float, probe: Probe) -> bool:
        """Young enough for ``max-age``, and inside its feedback radius."""
        return unusable(entry, distance, probe.terms) is None

    async def keep(self, probe: Probe, vector: np.ndarray | None, reply: LLMReply) -> Kept | None:
        """Keep the LLM's answer (unless ``no-store``; ``vector`` None: a prompt's lookup
        embedded nothing, so it is embedded now); the new entry."""
        if probe.control.no_store or not reply.storable:
            return None
        if vector is None:
            with probe.times.measure("embed"):
                vector = await self.embedder.embed_one(probe.key.question)
        if len(reply.text) > self.settings.max_response_chars:
            log.warning(
                "not storing an answer of %d characters (limit %d)",
                len(reply.text),
                self.settings.max_response_chars,
            )
            return None
        created, ttl = time.time(), probe.retention.ttl
        entry = NewEntry(
            ns=probe.ns,
            scope=probe.key.scope,
            model=probe.model,
            prompt=probe.key.question,
            normalised_prompt=probe.key.normalised,
            response=reply.text,
            vector=vector,
            llm_ms=reply.latency_ms,
            cost=self.settings.price_per_call_usd,
            retention=probe.retention,
            completion=reply.completion(),
            created=created,
            personal=probe.personal,
        )
        with probe.times.measure("redis"):
            entry_id = await self.vectors.keep(entry)
        return Kept(entry_id, created, created + ttl if ttl > 0 else None)


def _once(probe: Probe, produce: Produce) -> Produce:
    """``produce`` timed as the ``llm`` stage, called at most once: a second call (the
    outage's pass-through after the LLM answered and Redis failed) gets the same reply."""
    replies: list[LLMReply] = []

    async def once() -> LLMReply:
        if not replies:
            with probe.times.measure("llm"):
                replies.append(await produce())
        return replies[0]

    return once
