"""What watches the query path without steering it: each outcome counted (telemetry and
its trace), a share of semantic HITs audited, a withheld candidate compared with its MISS's
answer, shadow mode's would-be answers counted and compared, an outage's pass-through
counted."""

import logging

from index.decision.distance import similarity
from service.engine.audits import Auditor
from service.engine.probe import Probe
from service.engine.resolution import Kept, Missed, Resolution, elapsed_ms
from service.engine.shadow import Shadow
from service.engine.telemetry import NearMiss, Outcome, Telemetry
from service.llm.client import LLMReply

log = logging.getLogger(__name__)


class Outcomes:
    """The observers of every answered query."""

    def __init__(
        self, telemetry: Telemetry, auditor: Auditor | None, shadow: Shadow | None = None
    ) -> None:
        self.telemetry = telemetry
        self.auditor = auditor
        self.shadow = shadow

    def record(self, probe: Probe, resolution: Resolution) -> Resolution:
        """Count an outcome (for a HIT, what it saved; for a MISS with a candidate it did
        not serve, how near that came), with the time each stage took; audit a share of
        semantic HITs in the background. The resolution back."""
        ns, entry = probe.ns, resolution.entry
        finish_trace(probe, resolution.status.lower(), resolution.distance, resolution.confidence)
        if resolution.status == "HIT" and entry is not None:
            distance = resolution.distance or 0.0
            self.telemetry.record(
                ns,
                "hit",
                resolution.latency_ms,
                served=(ns, entry.entry_id, entry.exact_key),
                llm_ms_saved=entry.llm_ms if entry.llm_ms > 0 else resolution.latency_ms,
                cost_saved=entry.cost,
                tokens_saved=entry.total_tokens(),
                similarity=similarity(distance),
                times=probe.times,
                distance=distance,
            )
            if self.auditor is not None:  # in the background: the answer is not held up
                self.auditor.maybe_audit(
                    ns,
                    entry,
                    probe.key.question,
                    probe.replay,
                    distance,
                    probe.audit_rate,
                    resolution.confidence,
                )
                if not distance:
                    self.auditor.count_repeat(ns, entry)
            return resolution
        if resolution.status in ("SHADOW-HIT", "SHADOW-MISS"):
            return self._shadowed(probe, resolution)
        outcome: Outcome = "miss" if resolution.status == "MISS" else "bypass"
        near_miss = None
        if resolution.nearest_id is not None and resolution.distance is not None:
            near_miss = NearMiss(
                probe.key.question,
                resolution.nearest_id,
                resolution.distance,
                resolution.confidence,
                probe.personal,
            )
        self.telemetry.record(
            ns,
            outcome,
            resolution.latency_ms,
            times=probe.times,
            near_miss=near_miss,
            distance=resolution.distance,
        )
        return resolution

    def _shadowed(self, probe: Probe, resolution: Resolution) -> Resolution:
        """Shadow mode: the LLM answered, so a MISS to telemetry (a would-be HIT's entry is
        touched as a HIT's would be: its LRU, sliding TTL and hit count follow serving);
        what the cache would have done to the shadow's counts."""
        entry = resolution.entry
        served = (probe.ns, entry.entry_id, entry.exact_key) if entry is not None else None
        self.telemetry.record(
            probe.ns,
            "miss",
            resolution.latency_ms,
            served=served,
            times=probe.times,
            distance=resolution.distance,
        )
        if self.shadow is not None:
            self.shadow.observe(probe, resolution)
        return resolution

    def withheld(self, probe: Probe, missed: Missed, reply: LLMReply, kept: Kept | None) -> None:
        """A MISS whose candidate the bound withheld: compare its answer with the LLM's."""
        if missed.withheld is not None and self.auditor is not None:
            self.auditor.audit_withheld(
                probe.ns,
                missed.withheld,
                probe.key.question,
                missed.withheld_distance,
                reply.text,
                kept.entry_id if kept else None,
                missed.confidence,
            )

    def outage(self, probe: Probe, error: Exception, consequence: str) -> None:
        """Redis did not answer: said once per request, and counted (in memory, and into
        Redis when it answers again: an outage's spike of paid LLM calls shows)."""
        store_unavailable(error, consequence)
        self.telemetry.record(
            probe.ns, "bypass", elapsed_ms(probe.started), times=probe.times, outage=True
        )
        finish_trace(probe, "bypass")

    def record_shared(self, probe: Probe) -> None:
        """Count a streamed miss that read another request's upstream stream (a HIT: it
        made no call of its own)."""
        self.telemetry.record(probe.ns, "hit", elapsed_ms(probe.started), times=probe.times)
        finish_trace(probe, "hit")

    def record_bypass(self, ns: str, started: float, reply: LLMReply | None) -> Resolution:
        """Count a request that was never looked up (a client API's own pass-through)."""
        resolution = Resolution.bypass(started, reply)
        self.telemetry.record(ns, "bypass", resolution.latency_ms)
        return resolution


def store_unavailable(error: Exception, consequence: str) -> None:
    log.warning("Redis unavailable (%s): %s", type(error).__name__, consequence)


def finish_trace(
    probe: Probe, outcome: str, distance: float | None = None, confidence: float | None = None
) -> None:
    if probe.times.span is not None:
        probe.times.span.finish(probe.ns, outcome, distance, confidence)
