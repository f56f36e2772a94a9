"""The wrong-answer rate of served semantic HITs, estimated from audits: its distance bands
and its 95 % interval (Wilson's score interval, which stays inside [0, 1] and behaves at a
handful of audits where the normal approximation does not).

An audit asks the upstream the HIT's question again and compares the fresh answer with the
one served (``service/engine/audits.py``). The estimate is wrong audits / audits; its
interval assumes the audits were sampled at random from the served semantic HITs (they are:
each is audited with the same probability) and counts the equivalence check as exact (its
own error is measured in ``bench/audit.py``).

The bound (``max_wrong_rate``) decides from *evidence groups*: every comparison of a
candidate's answer with a fresh one (an audit of a served HIT, or a withheld candidate
against the answer its MISS got) is counted in one group, ``vouched`` when the candidate
lay inside its entry's verified radius (the farthest distance at which a query was found
right for that entry: a threshold learned per entry, as vCache learns one per cached
prompt), else its distance band. The bands open out to the widest edge whose pooled
evidence holds the bound; the vouched group opens on its own evidence, and may reach past
the static threshold (``learn_radius``).
"""

import math
from collections.abc import Mapping
from typing import Any

# upper bounds of the distance bands an audit is counted in (squared L2), nearest first
BANDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 4.0)
Z_95 = 1.959964
# the bound looks at six pooled groups (five band edges, the vouched group) and opens those
# whose upper bound holds: each look one-sided at 0.05 / 6 (z = 2.394), so that all of them
# hold together with 95 % confidence
Z_BOUND = 2.394
# the evidence group of candidates no farther from their entry than a query found right for
# it (the entry's verified radius): a decision learned per entry
VOUCHED = "vouched"


def band_of(distance: float) -> str:
    """The name of the band ``distance`` falls in: ``"<0.05"``, ``"<0.1"``, ..."""
    for bound in BANDS:
        if distance < bound:
            return f"<{bound:g}"
    return f"<{BANDS[-1]:g}"


def wilson(wrong: float, audits: float, z: float = Z_95) -> tuple[float, float]:
    """The two-sided interval of a proportion (``(0, 1)`` with no audits); ``audits`` may
    be an effective number of observations (``evidence_interval``)."""
    if audits <= 0:
        return 0.0, 1.0
    p = wrong / audits
    centre = p + z * z / (2 * audits)
    spread = z * math.sqrt(p * (1 - p) / audits + z * z / (4 * audits * audits))
    denominator = 1 + z * z / audits
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def estimate(wrong: int, audits: int) -> dict[str, Any]:
    """The estimate with its interval, as ``/v1/stats`` reports it (null with no audits)."""
    low, high = wilson(wrong, audits)
    return {
        "estimate": round(wrong / audits, 4) if audits else None,
        "low": round(low, 4),
        "high": round(high, 4),
        "audits": audits,
        "wrong": wrong,
    }


def summary(counts: Mapping[str, float]) -> dict[str, Any]:
    """A namespace's audit hash (``audits``, ``wrong``, ``audits:<band>``, ``wrong:<band>``,
    ``calls``, ``cost_usd``) as its estimate, per band and in total, and what the audits
    cost (the LLM calls they made: a pair audited before is counted again without one)."""
    audits, wrong = int(counts.get("audits", 0)), int(counts.get("wrong", 0))
    by_band = {}
    for bound in BANDS:
        band = f"<{bound:g}"
        in_band = int(counts.get(f"audits:{band}", 0))
        if in_band:
            by_band[band] = estimate(int(counts.get(f"wrong:{band}", 0)), in_band)
    return {
        **estimate(wrong, audits),
        "by_distance": by_band,
        "bound_evidence": bound_evidence(counts),
        "llm_calls": int(counts.get("calls", 0)),
        "cost_usd": round(float(counts.get("cost_usd", 0.0)), 6),
    }


def evidence_group(distance: float, vouched: bool) -> str:
    """The group a comparison is counted in for the bound: ``vouched`` when the entry's own
    verified radius reaches this far, else the distance band."""
    return VOUCHED if vouched else band_of(distance)


def evidence_interval(
    counted: float, wrong: float, squares: float, z: float = Z_BOUND
) -> tuple[float, float]:
    """The interval of a group's wrong rate from counts that repeat pairs: the rate is
    wrong / counted (weighted as the traffic is), the number of observations the effective
    one, counted² / squares (the sum of the pairs' squared counts; without repeats, the
    count itself): one popular question counted 60 times is about one observation."""
    if counted <= 0:
        return 0.0, 1.0
    effective = effective_count(counted, squares)
    return wilson(wrong / counted * effective, effective, z)


def effective_count(counted: float, squares: float) -> float:
    """How many independent observations ``counted`` comparisons are worth when their
    pairs' squared counts sum to ``squares``: counted² / squares (at most ``counted``)."""
    return counted * counted / max(squares, counted)


def _group(counts: Mapping[str, float], group: str) -> tuple[float, float, float]:
    """A group's (count, wrong, squared counts); squares default to the count (no repeats)."""
    counted = float(counts.get(f"evidence:{group}", 0))
    return (
        counted,
        float(counts.get(f"evidence_wrong:{group}", 0)),
        float(counts.get(f"evidence_sq:{group}", counted)),
    )


def bound_evidence(counts: Mapping[str, float]) -> dict[str, Any]:
    """What the bound decides from: each evidence group's comparisons (audits of served
    HITs, and withheld candidates against their MISS's answer) with its interval."""
    groups = [f"<{bound:g}" for bound in BANDS] + [VOUCHED]
    shown = {}
    for group in groups:
        counted, wrong, squares = _group(counts, group)
        if counted:
            low, high = evidence_interval(counted, wrong, squares, Z_95)
            shown[group] = {
                "estimate": round(wrong / counted, 4), "low": round(low, 4),
                "high": round(high, 4), "audits": int(counted), "wrong": int(wrong),
                "effective": round(effective_count(counted, squares), 1),
            }  # fmt: skip
    return shown


def vouched_open(counts: Mapping[str, float], max_wrong_rate: float) -> bool:
    """Whether candidates inside their entry's verified radius may be served under the
    bound: the vouched group's upper bound (``Z_BOUND``) is at or under ``max_wrong_rate``."""
    return evidence_interval(*_group(counts, VOUCHED))[1] <= max_wrong_rate


def served_radius(counts: Mapping[str, float], max_wrong_rate: float) -> float:
    """How far semantic HITs not vouched for by their entry may be served under an
    operator's bound on the wrong-answer rate: the widest band edge whose evidence, pooled
    with every nearer band's, has its upper bound (``Z_BOUND``) at or under
    ``max_wrong_rate``. What is bounded is the rate of all the HITs served inside that edge,
    so a nearer band need not hold the bound on its own (on the QQP stream the nearest band,
    near-identical questions of different clusters, read 16 % wrong where the three nearest
    pooled read 8 %). A band with no evidence is never an edge (it opens only inside a
    farther one that has some). 0 when no edge holds: then such candidates are MISSes whose
    answers are compared with the candidate they withheld (evidence for free), until the
    evidence is there."""
    radius, counted, wrong, squares = 0.0, 0.0, 0.0, 0.0
    for bound in BANDS:
        in_band, wrong_in_band, squares_in_band = _group(counts, f"<{bound:g}")
        counted += in_band
        wrong += wrong_in_band
        squares += squares_in_band
        if in_band and evidence_interval(counted, wrong, squares)[1] <= max_wrong_rate:
            radius = bound
    return radius
