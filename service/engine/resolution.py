"""What a lookup found, and how a query was answered: the query path's result types."""

import time
from dataclasses import dataclass

import numpy as np

from index.decision.verdict import RefusedBy, Verdict
from index.store.records import StoredEntry
from service.engine.probe import Probe
from service.engine.stage_times import StageTimes
from service.llm.client import LLMReply
from service.schemas import CacheStatus


@dataclass(frozen=True)
class Found:
    entry: StoredEntry
    distance: float
    confidence: float | None = None  # the decision stage's probability, when it decided


@dataclass(frozen=True)
class Missed:
    vector: np.ndarray | None  # None: a prompt's lookup embedded nothing (kept: embedded then)
    nearest: float | None  # the nearest candidate's distance, if any
    confidence: float | None = None  # the decision stage's probability for a refused one
    nearest_id: str | None = None  # the nearest candidate's entry
    # a candidate the wrong-rate bound withheld (then its distance): compared with the
    # MISS's answer
    withheld: StoredEntry | None = None
    withheld_distance: float = 0.0
    refused_by: RefusedBy | None = None  # why the nearest candidate was not served

    @classmethod
    def of(cls, vector: np.ndarray | None, verdict: Verdict) -> "Missed":
        return cls(
            vector,
            verdict.distance,
            verdict.confidence,
            verdict.nearest_id,
            verdict.withheld,
            verdict.withheld_distance,
            verdict.refused_by,
        )


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
    entry: StoredEntry | None = None  # HIT: what was served (SHADOW-HIT: would have been)
    distance: float | None = None  # HIT: its distance; MISS: the nearest candidate's
    reply: LLMReply | None = None  # MISS, BYPASS: the LLM's answer
    kept: Kept | None = None  # MISS: the entry it was stored as
    confidence: float | None = None  # the decision stage's probability for what it judged
    nearest_id: str | None = None  # MISS: the nearest candidate, not served
    times: StageTimes | None = None  # where its time went, stage by stage
    refused_by: RefusedBy | None = None  # MISS: why the nearest candidate was not served

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
            "HIT",
            elapsed_ms(probe.started),
            entry=found.entry,
            distance=found.distance,
            confidence=found.confidence,
            times=probe.times,
        )

    @classmethod
    def shadow_hit(cls, probe: Probe, found: Found, reply: LLMReply) -> "Resolution":
        """Shadow mode: the LLM answered (``reply``) where ``found`` would have served."""
        return cls(
            "SHADOW-HIT",
            elapsed_ms(probe.started),
            entry=found.entry,
            distance=found.distance,
            reply=reply,
            confidence=found.confidence,
            times=probe.times,
        )

    @classmethod
    def miss(
        cls,
        probe: Probe,
        missed: Missed | None,
        reply: LLMReply | None = None,
        kept: Kept | None = None,
    ) -> "Resolution":
        if missed is None:
            return cls("MISS", elapsed_ms(probe.started), reply=reply, kept=kept, times=probe.times)
        return cls(
            "MISS",
            elapsed_ms(probe.started),
            distance=missed.nearest,
            reply=reply,
            kept=kept,
            confidence=missed.confidence,
            nearest_id=missed.nearest_id,
            times=probe.times,
            refused_by=missed.refused_by,
        )

    @classmethod
    def bypass(
        cls, started: float, reply: LLMReply | None, times: StageTimes | None = None
    ) -> "Resolution":
        return cls("BYPASS", elapsed_ms(started), reply=reply, times=times)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
