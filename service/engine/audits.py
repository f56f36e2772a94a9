"""Audited hits: how often the cache serves a wrong answer, measured on its own traffic.

A share of the semantic HITs (``audit_rate``, per tenant; exact repeats are right by
definition) is asked of the LLM again in the background, after the HIT was answered: the
HIT's answer and its latency never change. The audit replays the request that was served,
as a MISS of it would have sent it (``Probe.replay``: system and developer prompts, earlier
turns, model, parameters, in the client API's own body, through the same client); a bare
question would be another request, whose answer may differ from a right one (one asked for
in another language, say). A HIT whose request cannot be replayed is not audited, and is
counted as such (``dynacache_audits_skipped_total{reason="unreplayable"}``).

The fresh answer is compared with the served one (the same normal form, else their
embeddings' cosine at least ``audit_answer_cut``, or, with ``audit_check="llm"``, the
upstream's own yes/no on whether both answer it alike); the verdict is counted in Redis
per namespace and distance band (``/v1/stats``'s ``wrong_answer_rate``, with its 95 %
interval) and on the entry, and the entry learns from it (``service/engine/feedback.py``):
a wrong audit narrows the entry's radius as a wrong report does, a right one widens its
verified radius. Audits are a random sample of the HITs, repeats included: the first
audit of an (entry, query) pair calls the LLM and keeps its verdict, a later HIT of the
same pair drawn for audit is counted again with it at no cost (deduplicating the pairs
instead biased the sample toward rare questions: the estimate read 28 % where 13 % of the
served semantic HITs were wrong). At most ``audit_max_per_s`` per namespace; the calls
are counted as LLM calls and cost.

With a bound on the wrong-answer rate (``max_wrong_rate``), semantic HITs are served only
from the evidence groups the bound opens (``index/decision/bound.py``); every served
semantic HIT is counted as offered to its group; a candidate the bound withholds becomes a
MISS, and the MISS's answer, which the LLM gave anyway, is compared with the withheld
candidate's: evidence at no extra cost, gathered where the bound is closed.
That answer is the one to the very request the candidate was withheld from (the MISS's own
call, whole or streamed), so it is a replay of that request by construction.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import numpy as np

from index.decision.wrong_rate import CheckError, band_of, evidence_group
from index.embedding.worker import EmbeddingWorker
from index.store.connection import STORE_UNAVAILABLE
from index.store.records import StoredEntry
from index.store.redis_store import RedisStore
from service.engine.feedback import FeedbackBook
from service.engine.metrics import Metrics
from service.errors import CacheError
from service.keying.normalise import normalise_prompt
from service.llm.client import LLMClient, Produce, UpstreamFailed, UpstreamTimedOut, complete
from service.settings import Settings
from service.tenancy.rate_limit import RateLimiter

log = logging.getLogger(__name__)

AUDIT_KEY_ID = "audit"  # the namespace's audit budget, in the rate limiter's buckets
COUNTS_FRESH_S = 1.0  # the bound reads a namespace's audit counts again after this
QUIET_S, QUIET_MAX_WAIT_S = 0.05, 5.0  # an audit's check waits for this pause, this long
# how often the embedding check errs where it is hard: answers that restate their question's
# topic, on the semantic HITs a cache serves (bench/audit.py, the topic stream)
EMBEDDING_CHECK_ERROR = CheckError(false_same=0.12, false_different=0.0)


def check_error(settings: Settings) -> CheckError:
    """The answer check's error rates the estimate and the bound are corrected for: the
    operator's (``audit_false_same``, ``audit_false_different``), else the embedding check's
    as measured, else none (the LLM judge's is not measured)."""
    measured = EMBEDDING_CHECK_ERROR if settings.audit_check == "embedding" else CheckError()
    return CheckError(
        measured.false_same if settings.audit_false_same is None else settings.audit_false_same,
        measured.false_different
        if settings.audit_false_different is None
        else settings.audit_false_different,
    )


def same_text(served: str, fresh: str) -> bool:
    return normalise_prompt(served) == normalise_prompt(fresh)


def same_answer(
    served: str, fresh: str, served_vector: np.ndarray, fresh_vector: np.ndarray, cut: float
) -> bool:
    """The answer-equivalence check: the same normal form, else unit vectors whose cosine
    reaches ``cut`` (``bench/audit.py`` measures how often it errs, both ways)."""
    return same_text(served, fresh) or float(np.dot(served_vector, fresh_vector)) >= cut


JUDGE_INSTRUCTION = (
    "Two answers to the same question follow. Reply with one word: yes if both give the "
    "same answer to the question (wording aside), no if they differ in substance."
)


def judge_prompt(question: str, served: str, fresh: str) -> str:
    """What the LLM judge is asked (``audit_check="llm"``)."""
    return (
        f"{JUDGE_INSTRUCTION}\n\nQuestion: {question}\n\nAnswer A: {served}\n\n"
        f"Answer B: {fresh}\n\nSame answer (yes or no)?"
    )


def judge_verdict(reply: str) -> bool | None:
    """The LLM judge's reply read as a verdict: its first word yes or no (any case, with
    punctuation); None for anything else (the audit is then not counted)."""
    words = reply.strip().split()
    first = words[0].strip(".,!:;*\"'").lower() if words else ""
    return {"yes": True, "no": False}.get(first)


class Auditor:
    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        llm: LLMClient,
        embedder: EmbeddingWorker,
        feedback: FeedbackBook,
        rate_limiter: RateLimiter,
        metrics: Metrics,
        chance: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self.embedder = embedder
        self.feedback = feedback
        self.rate_limiter = rate_limiter
        self.metrics = metrics
        self._chance = chance or random.Random()
        self._running: set[asyncio.Task[None]] = set()
        # each namespace's audit counts as last read (monotonic time, counts), for the bound
        self._counts: dict[str, tuple[float, dict[str, float]]] = {}
        self._reading: set[str] = set()
        self.check_error = check_error(settings)

    def maybe_audit(
        self, ns: str, entry: StoredEntry, question: str, replay: Produce | None,
        distance: float, rate: float, confidence: float | None = None,
    ) -> None:  # fmt: skip
        """Count a semantic HIT as offered to its evidence group (the bound weighs the
        groups by it), and audit it with probability ``rate`` by sending ``replay``, the
        request it answered, again (in the background; never awaited); None: it cannot be,
        and is counted as not audited."""
        if distance <= 0:
            return
        group = evidence_group(distance, entry.vouches(distance), confidence)
        self._spawn(self._offered(ns, group))
        if rate <= 0 or self._chance.random() >= rate:
            return
        if replay is None:
            self.metrics.audits_skipped.labels("unreplayable").inc()
            return
        self._spawn(self._audit(ns, entry, question, replay, distance, group))

    async def _offered(self, ns: str, group: str) -> None:
        try:
            await self.store.audits.offered(ns, group)
        except STORE_UNAVAILABLE as error:
            log.info("an offered candidate in %s not counted: %s", ns, error)

    async def _audit(
        self, ns: str, entry: StoredEntry, question: str, replay: Produce, distance: float,
        group: str,
    ) -> None:  # fmt: skip
        budget = self.settings.audit_max_per_s
        normalised = normalise_prompt(question)
        try:
            burst = max(1, round(budget))
            if await self.rate_limiter.take(ns, AUDIT_KEY_ID, budget, burst) > 0:
                self.metrics.audits_skipped.labels("budget").inc()
                return
            earlier, counted = await self.store.audits.claim(ns, entry.entry_id, normalised)
            if earlier == "pending":  # the pair's first audit is under way
                return
            if earlier is not None:  # audited before: counted again with its verdict, free
                right = earlier == "right"
                await self.store.audits.counted_again(
                    ns, entry.entry_id, normalised, right, counted + 1
                )
                await self._count(ns, group, distance, entry, right, 0, True, counted)
                return
        except (CacheError, *STORE_UNAVAILABLE) as error:
            log.info("audit of entry %s in %s not done: %s", entry.entry_id, ns, error)
            return
        try:
            fresh = await replay()
        except Exception as error:  # the upstream's, or an application's own call (library)
            known = isinstance(error, UpstreamFailed | UpstreamTimedOut | CacheError)
            log.log(logging.INFO if known else logging.WARNING,
                    "audit of entry %s in %s not done: %r", entry.entry_id, ns, error)  # fmt: skip
            with contextlib.suppress(*STORE_UNAVAILABLE):
                await self.store.audits.forget(ns, entry.entry_id, normalised)
            return
        await self._record(ns, entry, question, distance, group, fresh.text, calls=1)

    async def _record(
        self, ns: str, entry: StoredEntry, question: str, distance: float, group: str,
        fresh: str, calls: int, withheld: bool = False, stored_as: str | None = None,
    ) -> None:  # fmt: skip
        """Compare, count (namespace, band, entry), keep the pair's verdict, and feed the
        entry's feedback; a withheld candidate's verdict is also kept on the entry its MISS
        was ``stored_as``, for its exact repeats to count again."""
        normalised = normalise_prompt(question)
        try:
            if withheld:
                earlier, _ = await self.store.audits.claim(ns, entry.entry_id, normalised)
                if earlier is not None:  # this pair was judged already (or is being)
                    return
            right, judge_calls = await self.same_answer(entry.response, fresh, question)
            if right is None:
                log.info("audit of %s in %s: the judge gave no verdict", entry.entry_id, ns)
                await self.store.audits.forget(ns, entry.entry_id, normalised)
                return
            await self.store.audits.remember(ns, entry.entry_id, normalised, right)
            await self._count(ns, group, distance, entry, right, calls + judge_calls, not withheld)
            if stored_as is not None:
                await self.store.audits.mark_withheld(ns, stored_as, group, right)
            # the entry learns from it: a wrong audit narrows its radius to this query's, a
            # right one widens its verified radius
            await self.feedback.learn(ns, entry.entry_id, right, distance)
        except (UpstreamFailed, UpstreamTimedOut, CacheError, *STORE_UNAVAILABLE) as error:
            log.info("audit of entry %s in %s not recorded: %s", entry.entry_id, ns, error)
        except Exception:  # an audit never takes anything down with it
            log.exception("audit of entry %s in %s failed", entry.entry_id, ns)

    async def _count(
        self, ns: str, group: str, distance: float, entry: StoredEntry, right: bool,
        calls: int, served: bool, counted_before: int = 0,
    ) -> None:  # fmt: skip
        """Count a comparison: as evidence for the bound (in ``group``, where the candidate
        fell when it was found; a pair ``counted_before`` times already), and, for a served
        HIT, in the estimate (a withheld candidate is also counted as offered)."""
        cost = calls * self.settings.price_per_call_usd
        await self.store.audits.record(
            ns, entry.entry_id, band_of(distance), group, right, served, calls, cost,
            counted_before,
        )  # fmt: skip
        if served:
            verdict = "right" if right else "wrong"
            self.metrics.audits.labels(self.metrics.namespaces(ns), verdict).inc()

    def counts(self, ns: str) -> Mapping[str, float] | None:
        """The namespace's audit evidence as last read, for the bound (``index/decision/
        bound.py``); read again in the background once a second (None: none read yet)."""
        read = self._counts.get(ns)
        if (
            read is None or time.monotonic() - read[0] > COUNTS_FRESH_S
        ) and ns not in self._reading:
            self._reading.add(ns)
            self._spawn(self._read_counts(ns))
        return None if read is None else read[1]

    async def _read_counts(self, ns: str) -> None:
        try:
            counts = (await self.store.audits.counts([ns]))[ns]
            self._counts[ns] = (time.monotonic(), counts)
        except STORE_UNAVAILABLE as error:
            log.info("audit counts of %s not read: %s", ns, error)
        finally:
            self._reading.discard(ns)

    def audit_withheld(
        self, ns: str, entry: StoredEntry, question: str, distance: float, fresh: str,
        stored_as: str | None, confidence: float | None = None,
    ) -> None:  # fmt: skip
        """A candidate the bound withheld, against the answer the MISS got from the LLM
        anyway (and kept as entry ``stored_as``): evidence that costs no call (in the
        background)."""
        group = evidence_group(distance, entry.vouches(distance), confidence)
        self._spawn(self._record(ns, entry, question, distance, group, fresh, 0, True, stored_as))

    def count_repeat(self, ns: str, entry: StoredEntry) -> None:
        """An exact repeat of an entry made by a MISS whose candidate the bound withheld:
        that candidate's verdict counts again, as a served HIT's repeats are audited again
        (else the evidence would stand for first lookups only, likelier wrong than the
        repeats a served candidate also answers)."""
        if entry.withheld_verdict is not None:
            group, right = entry.withheld_verdict
            self._spawn(self._count_repeat(ns, entry.entry_id, group, right))

    async def _count_repeat(self, ns: str, entry_id: str, group: str, right: bool) -> None:
        try:
            await self.store.audits.count_withheld_repeat(ns, entry_id, group, right)
        except STORE_UNAVAILABLE as error:
            log.info("a withheld verdict's repeat in %s not counted: %s", ns, error)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="audit")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def same_answer(self, served: str, fresh: str, question: str) -> tuple[bool | None, int]:
        """The answer-equivalence check and the LLM calls it made: the same normal form,
        else ``same_answer`` with this replica's embedder, or the LLM judge (one call; None
        when its reply is neither yes nor no)."""
        if same_text(served, fresh):
            return True, 0
        # the check's embeddings wait for a pause in the requests (at most a few seconds):
        # an audit must not slow the HITs that follow the one it audits
        await self.embedder.quiet(QUIET_S, QUIET_MAX_WAIT_S)
        if self.settings.audit_check == "llm":
            reply = await complete(self.llm, judge_prompt(question, served, fresh), None)
            return judge_verdict(reply.text), 1
        vectors = await self.embedder.embed([served, fresh])
        cut = self.settings.audit_answer_cut
        return same_answer(served, fresh, vectors[0], vectors[1], cut), 0

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait for the audits under way (a test's, a bench's end), at most ``timeout_s``."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
