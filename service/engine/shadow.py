"""Shadow mode: every request is answered by the LLM as if there were no cache, and the
cache measures what it would have served (``docs/shadow.md``).

The query path looks up and decides as it would serve, keeps each would-be MISS's answer,
and hands each answered request here. A would-be HIT is counted with what it would have
saved (the LLM's own time for this request, less the lookup's; the entry's price); a
would-be semantic HIT's stored answer is compared with the LLM's fresh one by the audits'
answer check (``Auditor.same_answer``: no extra LLM call, the fresh answer is there), and
the verdict counted per distance band and per decision stage (``dc:shadow:{ns}``), and as
evidence for the wrong-rate bound (so a bound serves from the first day of serving). What
a bound would have let through is read from that evidence with the bound's own rule
(``open_groups``: the evidence groups it would serve).
"""

import logging
from collections.abc import Mapping
from typing import Any

from index.decision.wrong_rate import (
    BANDS,
    EXACT,
    CheckError,
    band_of,
    estimate,
    evidence_group,
    open_groups,
)
from index.store.connection import STORE_UNAVAILABLE
from index.store.redis_store import RedisStore
from service.engine.audits import Auditor
from service.engine.background import Background
from service.engine.metrics import Metrics
from service.engine.probe import Probe
from service.engine.resolution import Resolution
from service.errors import CacheError
from service.llm.client import UpstreamFailed, UpstreamTimedOut

log = logging.getLogger(__name__)

# the bounds on the wrong-answer rate whose effect /v1/stats shows
BOUNDS_SHOWN = (0.01, 0.02, 0.05, 0.1, 0.2)
STAGES = ("static", "pair-model", "verifier")


class Shadow:
    """Counts what shadow mode's requests would have been, and compares answers."""

    def __init__(self, store: RedisStore, auditor: Auditor, metrics: Metrics) -> None:
        self.store = store
        self.auditor = auditor
        self.metrics = metrics
        self._background = Background("shadow")

    def observe(self, probe: Probe, resolution: Resolution) -> None:
        """Count a request answered in shadow mode (in the background: never held up)."""
        self._background.spawn(self._observe(probe, resolution))

    async def _observe(self, probe: Probe, resolution: Resolution) -> None:
        ns, entry, reply = probe.ns, resolution.entry, resolution.reply
        label = self.metrics.namespaces(ns)
        try:
            if resolution.status != "SHADOW-HIT" or entry is None or reply is None:
                self.metrics.shadow_requests.labels(label, "miss").inc()
                await self.store.shadow.add(ns, {"requests": 1, "misses": 1})
                return
            distance = resolution.distance or 0.0
            would_be = "semantic" if distance > 0 else "exact"
            lookup_ms = max(0.0, resolution.latency_ms - reply.latency_ms)
            self.metrics.shadow_requests.labels(label, would_be).inc()
            self.metrics.shadow_latency_saved.labels(label).inc(
                max(0.0, reply.latency_ms - lookup_ms) / 1000
            )
            self.metrics.shadow_cost_saved.labels(label).inc(entry.cost)
            await self.store.shadow.add(
                ns,
                {
                    "requests": 1,
                    would_be: 1,
                    "llm_ms": reply.latency_ms,
                    "lookup_ms": lookup_ms,
                    "cost_usd": entry.cost,
                },
            )
            if would_be == "exact":  # an exact repeat is right by definition
                self.auditor.count_repeat(ns, entry)
                return
            stage = probe.terms.judge.name if probe.terms.judge is not None else "static"
            question = probe.key.question
            right, calls = await self.auditor.same_answer(entry.response, reply.text, question)
            band = band_of(distance)
            group = evidence_group(distance, entry.vouches(distance), resolution.confidence)
            if right is None:
                await self.store.shadow.add(ns, {"uncompared": 1, "calls": calls})
                return
            verdict = "right" if right else "wrong"
            self.metrics.shadow_compared.labels(label, band, stage, verdict).inc()
            wrong = 0 if right else 1
            await self.store.shadow.add(
                ns,
                {
                    "compared": 1,
                    "wrong": wrong,
                    f"compared:{band}": 1,
                    f"wrong:{band}": wrong,
                    f"compared:stage:{stage}": 1,
                    f"wrong:stage:{stage}": wrong,
                    f"compared:group:{group}": 1,
                    f"wrong:group:{group}": wrong,
                    "calls": calls,
                },
            )
            await self.auditor.count_shadow(
                ns, entry, question, distance, right, resolution.confidence
            )
        except (UpstreamFailed, UpstreamTimedOut, CacheError, *STORE_UNAVAILABLE) as error:
            log.info("a shadow request in %s not counted: %s", ns, error)
        except Exception:  # counting never takes anything down with it
            log.exception("a shadow request in %s not counted", ns)

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait for the counts under way (a test's, a bench's end), at most ``timeout_s``."""
        await self._background.settle(timeout_s)

    async def stop(self) -> None:
        await self._background.stop()


def let_through(
    counts: Mapping[str, float],
    evidence: Mapping[str, float],
    bound: float,
    check: CheckError = EXACT,
) -> tuple[list[str], float, float]:
    """What a bound would have let through of the compared would-be semantic HITs: the
    evidence groups it would serve (``open_groups`` of the namespace's evidence), and how
    many of them fell in those groups, and how many of those were wrong."""
    opened = sorted(open_groups(evidence, bound, check))
    served = sum(counts.get(f"compared:group:{group}", 0.0) for group in opened)
    wrong = sum(counts.get(f"wrong:group:{group}", 0.0) for group in opened)
    return opened, served, wrong


def summary(
    counts: Mapping[str, float], bounds: Mapping[float, tuple[list[str] | None, float, float]]
) -> dict[str, Any]:
    """A namespace's (or the total's) shadow counts as ``/v1/stats`` shows them: the
    would-be hit rates and savings, the would-be semantic HITs' wrong-answer rate with its
    interval (in total, per distance band, per decision stage), and per bound what it
    would have let through (``bounds``: per bound, the evidence groups it would serve, and
    the compared would-be semantic HITs in them and the wrong ones among them; the total's
    groups: None, each namespace has its own)."""

    def count(name: str) -> int:
        return int(counts.get(name, 0))

    requests, exact, semantic = count("requests"), count("exact"), count("semantic")
    hits, compared = exact + semantic, count("compared")
    by_band = {
        f"<{edge:g}": estimate(count(f"wrong:<{edge:g}"), count(f"compared:<{edge:g}"))
        for edge in BANDS
        if count(f"compared:<{edge:g}")
    }
    by_stage = {
        stage: estimate(count(f"wrong:stage:{stage}"), count(f"compared:stage:{stage}"))
        for stage in STAGES
        if count(f"compared:stage:{stage}")
    }
    return {
        "requests": requests,
        "exact_hits": exact,
        "semantic_hits": semantic,
        "misses": count("misses"),
        "hit_rate": hits / requests if requests else 0.0,
        "exact_hit_rate": exact / requests if requests else 0.0,
        "semantic_hit_rate": semantic / requests if requests else 0.0,
        "llm_calls_saved": hits,
        "cost_saved_usd": round(counts.get("cost_usd", 0.0), 6),
        "latency_saved_ms": round(counts.get("llm_ms", 0.0) - counts.get("lookup_ms", 0.0), 3),
        "avg_hit_latency_ms": round(counts.get("lookup_ms", 0.0) / hits, 3) if hits else 0.0,
        "wrong_answer_rate": {
            **estimate(count("wrong"), compared),
            "uncompared": count("uncompared"),
            "by_distance": by_band,
            "by_stage": by_stage,
        },
        "bounds": [
            {
                "max_wrong_rate": bound,
                "open_groups": groups,
                "semantic_hits_served": int(served),
                "share_of_semantic_hits": round(served / compared, 4) if compared else None,
                "wrong_answer_rate": estimate(int(wrong), int(served)),
            }
            for bound, (groups, served, wrong) in sorted(bounds.items())
        ],
    }


async def shadow_stats(
    store: RedisStore, evidence: Mapping[str, Mapping[str, float]], check: CheckError = EXACT
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """``/v1/stats``'s shadow figures of each namespace of ``evidence`` (its audit counts)
    that ran in shadow mode, and their total (None: none did)."""
    shadowed = await store.shadow.counts(sorted(evidence))
    per_ns: dict[str, dict[str, Any]] = {}
    total: dict[str, float] = {}
    total_bounds: dict[float, tuple[list[str] | None, float, float]] = {
        bound: (None, 0.0, 0.0) for bound in BOUNDS_SHOWN
    }
    for ns, counts in shadowed.items():
        if not counts:
            continue
        bounds: dict[float, tuple[list[str] | None, float, float]] = {
            bound: let_through(counts, evidence[ns], bound, check) for bound in BOUNDS_SHOWN
        }
        per_ns[ns] = summary(counts, bounds)
        for name, value in counts.items():
            total[name] = total.get(name, 0.0) + value
        for bound, (_, served, wrong) in bounds.items():
            _, served_before, wrong_before = total_bounds[bound]
            total_bounds[bound] = (None, served_before + served, wrong_before + wrong)
    return per_ns, summary(total, total_bounds) if total else None
