"""The path of one query, top to bottom:

normalise (RAG blocks into the scope) → exact match → embed → search → confirm in Redis →
decide → serve; or call the LLM (once for identical misses in flight) → store (which
publishes). Each step against the vector side is one call of its one door
(``index/lookup.py``: exact, nearest, confirm, keep), which chooses between this replica's
FAISS index and Redis's HNSW mirror and repairs entries found gone.

Every client API walks it through the same public calls: :meth:`QueryPath.probe` (what to
look up, with the request → tenant → service choices), then :meth:`QueryPath.resolve` (look
up, else call the LLM once for identical misses in flight, store, record), or, for a client
that relays a stream itself, :meth:`QueryPath.find` and :meth:`QueryPath.keep_streamed`
around its relay, and :meth:`QueryPath.record` for an outcome it produced on its own.

Redis failing at any step turns the request into a pass-through to the LLM (``BYPASS``);
this module is the one place that decides so. The LLM failing raises ``UpstreamFailed`` /
``UpstreamTimedOut`` (502/504 over HTTP) and stores nothing.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from index.embedding.worker import EmbeddingWorker
from index.lookup import VectorSide
from index.policy.distance import is_hit, resolve_threshold, similarity
from index.store.connection import STORE_UNAVAILABLE
from index.store.records import NewEntry, Retention, StoredEntry
from service.engine.audits import Auditor
from service.engine.coalescing import Followed, MissCoalescer
from service.engine.decision import DecisionStage, Judge, JudgedPair
from service.engine.stage_times import StageTimes
from service.engine.telemetry import NearMiss, Outcome, Telemetry
from service.engine.tracing import LookupSpan
from service.errors import InvalidInput
from service.keying.prompt_key import PromptKey, prompt_key
from service.keying.rag import RagSplitter
from service.llm.client import LLMClient, LLMReply, Produce, complete
from service.policy.cache_control import CacheControl
from service.policy.precedence import first_set
from service.policy.user_scope import EndUser, ScopeAsked, end_user
from service.policy.validation import validate_context, validate_prompt, validate_response
from service.schemas import CacheMode, CacheStatus, QueryRequest, TenantSettings
from service.settings import Settings
from service.tenancy.tenants import effective_threshold, retention_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    """One lookup: what is searched for, where, how, and how a miss's answer is kept."""

    ns: str
    key: PromptKey
    model: str
    threshold: float
    retention: Retention
    mode: CacheMode = "default"
    control: CacheControl = field(default_factory=CacheControl)
    # a decision stage in force (pair model, verifier): the nearest live candidate inside
    # ``threshold`` (the stage's radius) is served only when it gets at least this probability
    verifier_cut: float | None = None
    judge: Judge | None = None  # the stage in force when the lookup began (None: static)
    audit_rate: float = 0.0  # the share of its semantic HITs audited (service/engine/audits)
    max_wrong_rate: float | None = None  # a bound on the audited wrong-answer rate (None: none)
    # the upstream request a MISS of this lookup sends, which an audit of its HIT sends
    # again (None: it cannot be replayed, and its HITs are not audited)
    replay: Produce | None = None
    personal: bool = False  # per-user scope: its prompt is not shown to others (insights)
    started: float = field(default_factory=time.perf_counter)
    times: StageTimes = field(default_factory=lambda: StageTimes(LookupSpan()))


@dataclass(frozen=True)
class Found:
    entry: StoredEntry
    distance: float
    confidence: float | None = None  # the decision stage's probability, when it decided


@dataclass(frozen=True)
class Missed:
    vector: np.ndarray
    nearest: float | None  # the nearest candidate's distance, if any
    confidence: float | None = None  # the decision stage's probability for a refused one
    nearest_id: str | None = None  # the nearest candidate's entry
    # a candidate the wrong-rate bound withheld (then its distance): compared with the
    # MISS's answer
    withheld: StoredEntry | None = None
    withheld_distance: float = 0.0


@dataclass(frozen=True)
class Kept:
    """A MISS's answer as stored."""

    entry_id: str
    created: float
    expires_at: float | None  # None: never expires


@dataclass(frozen=True)
class Resolution:
    """How a query was answered."""

    status: CacheStatus
    latency_ms: float
    entry: StoredEntry | None = None  # HIT: what was served
    distance: float | None = None  # HIT: its distance; MISS: the nearest candidate's
    reply: LLMReply | None = None  # MISS, BYPASS: the LLM's answer
    kept: Kept | None = None  # MISS: the entry it was stored as
    confidence: float | None = None  # the decision stage's probability for what it judged
    nearest_id: str | None = None  # MISS: the nearest candidate, not served
    times: StageTimes | None = None  # where its time went, stage by stage

    @property
    def entry_id(self) -> str | None:
        """MISS: the entry its answer was stored as (None: not stored)."""
        return self.kept.entry_id if self.kept else None

    @property
    def server_timing(self) -> str:
        """The ``Server-Timing`` header of this answer."""
        return (self.times or StageTimes()).server_timing(self.latency_ms)

    @classmethod
    def hit(cls, probe: Probe, found: Found) -> "Resolution":
        return cls(
            "HIT", _elapsed_ms(probe.started), entry=found.entry, distance=found.distance,
            confidence=found.confidence, times=probe.times,
        )  # fmt: skip

    @classmethod
    def miss(
        cls,
        probe: Probe,
        missed: Missed | None,
        reply: LLMReply | None = None,
        kept: Kept | None = None,
    ) -> "Resolution":
        return cls(
            "MISS", _elapsed_ms(probe.started), distance=missed.nearest if missed else None,
            reply=reply, kept=kept, confidence=missed.confidence if missed else None,
            nearest_id=missed.nearest_id if missed else None, times=probe.times,
        )  # fmt: skip

    @classmethod
    def bypass(
        cls, started: float, reply: LLMReply | None, times: StageTimes | None = None
    ) -> "Resolution":
        return cls("BYPASS", _elapsed_ms(started), reply=reply, times=times)


class QueryPath:
    def __init__(
        self,
        settings: Settings,
        vectors: VectorSide,
        embedder: EmbeddingWorker,
        llm: LLMClient,
        telemetry: Telemetry,
        coalescer: MissCoalescer,
        splitter: RagSplitter,
        decision: DecisionStage | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self.settings = settings
        self.vectors = vectors
        self.embedder = embedder
        self.llm = llm
        self.telemetry = telemetry
        self.coalescer = coalescer
        self.splitter = splitter
        self.decision = decision or DecisionStage(None, None)
        self.auditor = auditor

    def probe(
        self,
        ns: str,
        key: PromptKey,
        model: str | None,
        tenant: TenantSettings | None,
        control: CacheControl,
        mode: CacheMode = "default",
        threshold: float | None = None,
        ttl: int | None = None,
        ttl_policy: str | None = None,
        verifier_cut: float | None = None,
        max_wrong_rate: float | None = None,
        replay: Produce | None = None,
        personal: bool = False,
    ) -> Probe:
        """A lookup with the request's choices, else the tenant's, else the service's. With
        a decision stage in force (pair model, verifier), the threshold is the radius inside
        which candidates are judged. ``replay``: the upstream request a MISS sends."""
        cut = None
        judge = self.decision.judge
        if judge is not None:
            cut = first_set(
                verifier_cut,
                tenant.verifier_cut if tenant else None,
                self.settings.verifier_cut,
                judge.cut,
            )
        return Probe(
            ns=ns,
            key=key,
            model=model or "",
            threshold=self._threshold(threshold, tenant, judge),
            retention=retention_for(self.settings, tenant, ttl, ttl_policy),
            mode="refresh" if control.no_cache and mode == "default" else mode,
            control=control,
            verifier_cut=cut,
            judge=judge,
            audit_rate=first_set(tenant.audit_rate if tenant else None, self.settings.audit_rate),
            max_wrong_rate=_first_bound(
                max_wrong_rate,
                tenant.max_wrong_rate if tenant else None,
                self.settings.max_wrong_rate,
            ),
            replay=replay,
            personal=personal,
        )

    def _threshold(
        self, asked: float | None, tenant: TenantSettings | None, judge: Judge | None
    ) -> float:
        """The request's threshold, else the tenant's, else the service's (with ``judge``
        in force, the radius inside which it judges)."""
        default = self.settings.threshold
        if judge is not None:
            default = first_set(self.settings.verifier_radius, judge.radius)
        return resolve_threshold(asked, effective_threshold(default, tenant))

    def reach(self, tenant: TenantSettings | None) -> float:
        """How far this tenant's lookups look at candidates unless a request sets its own
        threshold: the threshold in force, and ``learn_radius`` (as far as a lookup under a
        bound looks; any request may name a bound)."""
        return max(self._threshold(None, tenant, self.decision.judge), self.settings.learn_radius)

    def request_probe(
        self,
        request: QueryRequest,
        ns: str,
        tenant: TenantSettings | None = None,
        control: CacheControl | None = None,
        who: EndUser | None = None,
    ) -> Probe:
        """The lookup a ``/v1/query`` body (or the library's call) asks for (``who``: whose
        entries serve it, as the request's body and headers say; None: as its body says)."""
        validate_prompt(request.prompt, self.settings.max_prompt_chars)
        validate_context(request.context, self.settings.max_prompt_chars)
        if who is None:
            asked = ScopeAsked(body_mode=request.scope, body_user=request.user)
            who = end_user(asked, tenant, self.settings.scope_mode)
        key = prompt_key(
            self.splitter, request.prompt, request.model, [request.context], user=who.partition
        )
        mode: CacheMode = "bypass" if who.unknown else request.cache
        return self.probe(
            ns, key, request.model, tenant, control or CacheControl(), mode,
            request.threshold, request.ttl, request.ttl_policy, request.verifier_cut,
            request.max_wrong_rate, personal=who.personal,
        )  # fmt: skip

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
        """``POST /v1/query`` (``service/http/query_answer.py`` makes its body), or the
        library's lookup; a miss asks ``produce`` (the question; default: the LLM), and an
        audit of a HIT asks it again, unless not ``replayable`` (the library's ``check``,
        whose application asks an LLM of its own)."""
        probe = self.request_probe(request, ns, tenant, control, who)
        if probe.mode == "bypass" and request.cache == "only":
            # per-user scope and no user named: none of its entries to look up, and "only"
            # never asks the LLM
            return self.record(probe, Resolution.miss(probe, None))
        question = probe.key.question

        async def ask() -> LLMReply:
            if produce is None:
                return await complete(self.llm, question, request.model)
            return await produce(question)

        return await self.resolve(replace(probe, replay=ask if replayable else None), ask)

    async def store_answer(
        self, request: QueryRequest, ns: str, reply: LLMReply, tenant: TenantSettings | None = None
    ) -> Kept:
        """Keep ``reply`` as the answer to ``request``, as its MISS would have (same scope,
        retention, write and event): the library's ``store``."""
        probe = self.request_probe(request, ns, tenant)
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

    async def resolve(self, probe: Probe, produce: Produce) -> Resolution:
        """Serve ``probe`` from the cache, or from ``produce`` (the LLM) and store that;
        the outcome is recorded."""
        try:
            return await self._resolve(probe, produce)
        except BaseException as error:  # the LLM failed, cancelled, a bug: on its trace
            if probe.times.span is not None:
                probe.times.span.fail(probe.ns, error)
            raise

    async def _resolve(self, probe: Probe, produce: Produce) -> Resolution:
        times = probe.times

        async def call_llm() -> LLMReply:
            with times.measure("llm"):
                return await produce()

        if probe.mode == "bypass":
            return self.record(
                probe, Resolution.bypass(probe.started, await call_llm(), probe.times)
            )
        reply: LLMReply | None = None
        try:
            found = await self.look_up(probe)
            if isinstance(found, Found):
                return self.record(probe, Resolution.hit(probe, found))
            if probe.mode == "only":
                return self.record(probe, Resolution.miss(probe, found))

            async def call_llm_and_store() -> Kept | None:
                nonlocal reply
                reply = await call_llm()
                kept = await self.keep(probe, found.vector, reply)
                self._audit_withheld(probe, found, reply, kept)
                return kept

            if probe.mode == "refresh" or probe.control.no_store:
                kept = await call_llm_and_store()
            else:  # identical misses in flight, here or on other replicas, share one call
                key = probe.key
                outcome = await self.coalescer.run(
                    probe.ns, key.scope, key.normalised, call_llm_and_store,
                    lambda entry: self.servable(entry, 0.0, probe),
                )  # fmt: skip
                if isinstance(outcome, Followed):
                    return self.record(probe, Resolution.hit(probe, Found(outcome.entry, 0.0)))
                kept = outcome.result
            return self.record(probe, Resolution.miss(probe, found, reply, kept))
        except STORE_UNAVAILABLE as error:
            _store_unavailable(error, "passing the query through")
            if probe.mode == "only":
                return Resolution.miss(probe, None)
            # counted in memory, and into Redis when it answers again: an outage's spike of
            # paid LLM calls shows
            bypassed = Resolution.bypass(probe.started, reply or await call_llm(), probe.times)
            self.telemetry.record(probe.ns, "bypass", bypassed.latency_ms, times=probe.times,
                                  outage=True)  # fmt: skip
            _finish_trace(probe, "bypass")
            return bypassed

    async def find(self, probe: Probe) -> Found | Missed | None:
        """:meth:`look_up`, or None when Redis does not answer (then the caller passes the
        request through; it is counted here, as it starts)."""
        try:
            return await self.look_up(probe)
        except STORE_UNAVAILABLE as error:
            _store_unavailable(error, "passing the query through")
            self.telemetry.record(probe.ns, "bypass", _elapsed_ms(probe.started),
                                  times=probe.times, outage=True)  # fmt: skip
            _finish_trace(probe, "bypass")
            return None

    async def keep_streamed(self, probe: Probe, missed: Missed, reply: LLMReply) -> Resolution:
        """Store an answer the caller relayed itself (a stream that finished), and record
        the miss; with Redis not answering, the answer is not stored."""
        try:
            kept = await self.keep(probe, missed.vector, reply)
        except STORE_UNAVAILABLE as error:
            _store_unavailable(error, "the streamed answer is not stored")
            kept = None
        self._audit_withheld(probe, missed, reply, kept)
        return self.record(probe, Resolution.miss(probe, missed, reply, kept))

    async def look_up(self, probe: Probe) -> Found | Missed:
        """The live entry that answers ``probe`` (exact, else the nearest inside its
        threshold that the decision stage in force accepts), or the query's vector for storing a
        new one. Entries narrowed by wrong-hit feedback refuse queries outside their radius."""
        key, times, vectors = probe.key, probe.times, self.vectors
        vectors.asked_for(probe.ns)
        if probe.mode != "refresh":
            with times.measure("redis"):
                exact = await vectors.exact(probe.ns, key.scope, key.normalised)
            if exact is not None and self.servable(exact, 0.0, probe):
                return Found(exact, 0.0)

        with times.measure("embed"):
            vector = await self.embedder.embed_one(key.question)
        if probe.mode == "refresh":
            return Missed(vector, None)

        with times.measure("search"):
            candidates = await vectors.nearest(probe.ns, key.scope, vector, self.settings.top_k)
        nearest = candidates[0].distance if candidates else None
        nearest_id = candidates[0].entry_id if candidates else None
        reach = self._reach(probe)
        for position, candidate in enumerate(candidates):
            if not is_hit(candidate.distance, reach):
                break
            with times.measure("redis"):
                entry = await vectors.confirm(probe.ns, candidate.entry_id)
            if entry is None or not self.servable(entry, candidate.distance, probe):
                continue  # gone from Redis (and dropped here), or not for this query
            confidence = None
            judged = is_hit(candidate.distance, probe.threshold)  # (past it: the bound's)
            if judged and probe.verifier_cut is not None and probe.judge is not None:
                # only the nearest servable candidate is judged; the next gives the margin
                runner_up = (
                    candidates[position + 1].distance if position + 1 < len(candidates) else None
                )
                with times.measure("verify"):
                    confidence = await self.decision.probability(
                        probe.judge,
                        JudgedPair(key.question, entry.prompt, vector, entry.vector,
                                   candidate.distance, runner_up),
                    )  # fmt: skip
                # None: the cascade settled it on its distance
                if confidence is not None and confidence < probe.verifier_cut:
                    return Missed(vector, nearest, confidence, nearest_id)
            if self._within_bound(probe, entry, candidate.distance):
                return Found(entry, candidate.distance, confidence)
            return Missed(vector, nearest, confidence, nearest_id, entry, candidate.distance)
        return Missed(vector, nearest, nearest_id=nearest_id)

    def _reach(self, probe: Probe) -> float:
        """How far candidates are looked at: the threshold; with a bound in force, as far
        as ``learn_radius`` too (candidates past the threshold are served only inside their
        entry's verified radius, and otherwise teach it)."""
        if self._bound_of(probe) is None:
            return probe.threshold
        return max(probe.threshold, self.settings.learn_radius)

    def _within_bound(self, probe: Probe, entry: StoredEntry, distance: float) -> bool:
        """Whether the operator's bound on the wrong-answer rate (if any) lets a semantic
        HIT this far from ``entry`` be served (``service/engine/audits.py``)."""
        bound = self._bound_of(probe)
        if bound is None or self.auditor is None:
            return True
        return self.auditor.within_bound(probe.ns, entry, distance, probe.threshold, bound)

    def _bound_of(self, probe: Probe) -> float | None:
        """The wrong-rate bound in force for ``probe`` (None: none, or no auditor to hold
        it)."""
        return None if self.auditor is None else probe.max_wrong_rate

    def _audit_withheld(
        self, probe: Probe, missed: Missed, reply: LLMReply, kept: Kept | None
    ) -> None:
        """A MISS whose candidate the bound withheld: compare its answer with the LLM's."""
        if missed.withheld is not None and self.auditor is not None:
            self.auditor.audit_withheld(
                probe.ns, missed.withheld, probe.key.question, missed.withheld_distance,
                reply.text, kept.entry_id if kept else None,
            )  # fmt: skip

    @staticmethod
    def servable(entry: StoredEntry, distance: float, probe: Probe) -> bool:
        """Young enough for ``max-age``, and inside its feedback radius."""
        return probe.control.fresh_enough(entry.age_s(time.time())) and entry.admits(distance)

    async def keep(self, probe: Probe, vector: np.ndarray, reply: LLMReply) -> Kept | None:
        """Keep the LLM's answer (unless ``no-store``); the new entry."""
        if probe.control.no_store or not reply.storable:
            return None
        if len(reply.text) > self.settings.max_response_chars:
            log.warning("not storing an answer of %d characters (limit %d)",
                        len(reply.text), self.settings.max_response_chars)  # fmt: skip
            return None
        created, ttl = time.time(), probe.retention.ttl
        with probe.times.measure("redis"):
            entry_id = await self.vectors.keep(
                NewEntry(
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
            )
        return Kept(entry_id, created, created + ttl if ttl > 0 else None)

    def record(self, probe: Probe, resolution: Resolution) -> Resolution:
        """Count an outcome (for a HIT, what it saved; for a MISS with a candidate it did
        not serve, how near that came), with the time each stage took; the resolution back."""
        ns, entry = probe.ns, resolution.entry
        _finish_trace(probe, resolution.status.lower(), resolution.distance,
                      resolution.confidence)  # fmt: skip
        if resolution.status == "HIT" and entry is not None:
            self.telemetry.record(
                ns, "hit", resolution.latency_ms,
                served=(ns, entry.entry_id, entry.exact_key),
                llm_ms_saved=entry.llm_ms if entry.llm_ms > 0 else resolution.latency_ms,
                cost_saved=entry.cost,
                tokens_saved=entry.total_tokens(),
                similarity=similarity(resolution.distance or 0.0),
                times=probe.times,
                distance=resolution.distance or 0.0,
            )  # fmt: skip
            if self.auditor is not None:  # in the background: the answer is not held up
                self.auditor.maybe_audit(
                    ns, entry, probe.key.question, probe.replay, resolution.distance or 0.0,
                    probe.audit_rate,
                )  # fmt: skip
                if not resolution.distance:
                    self.auditor.count_repeat(ns, entry)
            return resolution
        outcome: Outcome = "miss" if resolution.status == "MISS" else "bypass"
        near_miss = None
        if resolution.nearest_id is not None and resolution.distance is not None:
            near_miss = NearMiss(
                probe.key.question, resolution.nearest_id, resolution.distance,
                resolution.confidence, probe.personal,
            )  # fmt: skip
        self.telemetry.record(
            ns, outcome, resolution.latency_ms, times=probe.times, near_miss=near_miss,
            distance=resolution.distance,
        )  # fmt: skip
        return resolution

    def record_shared(self, probe: Probe) -> None:
        """Count a streamed miss that read another request's upstream stream (a HIT: it
        made no call of its own)."""
        self.telemetry.record(probe.ns, "hit", _elapsed_ms(probe.started), times=probe.times)
        _finish_trace(probe, "hit")

    def record_bypass(self, ns: str, started: float, reply: LLMReply | None) -> Resolution:
        """Count a request that was never looked up (a client API's own pass-through)."""
        resolution = Resolution.bypass(started, reply)
        self.telemetry.record(ns, "bypass", resolution.latency_ms)
        return resolution


def _store_unavailable(error: Exception, consequence: str) -> None:
    log.warning("Redis unavailable (%s): %s", type(error).__name__, consequence)


def _first_bound(*bounds: float | None) -> float | None:
    """The first wrong-rate bound set (request, tenant, service), or None: no bound."""
    return next((bound for bound in bounds if bound is not None), None)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _finish_trace(
    probe: Probe, outcome: str, distance: float | None = None, confidence: float | None = None
) -> None:
    if probe.times.span is not None:
        probe.times.span.finish(probe.ns, outcome, distance, confidence)
