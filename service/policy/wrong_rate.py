"""The wrong-answer rate of served semantic HITs, estimated from audits: its distance bands
and its 95 % interval (Wilson's score interval, which stays inside [0, 1] and behaves at a
handful of audits where the normal approximation does not).

An audit asks the upstream the HIT's question again and compares the fresh answer with the
one served (``service/engine/audits.py``). The estimate is wrong audits / audits; its
interval assumes the audits were sampled at random from the served semantic HITs (they are:
each is audited with the same probability) and counts the equivalence check as exact (its
own error is measured in ``bench/audit.py``).
"""

import math
from collections.abc import Mapping
from typing import Any

# upper bounds of the distance bands an audit is counted in (squared L2), nearest first
BANDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 4.0)
Z_95 = 1.959964


def band_of(distance: float) -> str:
    """The name of the band ``distance`` falls in: ``"<0.05"``, ``"<0.1"``, ..."""
    for bound in BANDS:
        if distance < bound:
            return f"<{bound:g}"
    return f"<{BANDS[-1]:g}"


def wilson(wrong: int, audits: int, z: float = Z_95) -> tuple[float, float]:
    """The two-sided interval of a proportion (``(0, 1)`` with no audits)."""
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
        "llm_calls": int(counts.get("calls", 0)),
        "cost_usd": round(float(counts.get("cost_usd", 0.0)), 6),
    }


def served_radius(counts: Mapping[str, float], max_wrong_rate: float) -> float:
    """How far semantic HITs may be served under an operator's bound on the wrong-answer
    rate: the widest band edge such that the audits of every band nearer than it, pooled,
    have their 95 % upper bound at or under ``max_wrong_rate`` (audits are drawn at random
    from served HITs, so each band's share of them is its share of the HITs). A band no
    audit has seen opens only with a farther one that has evidence (a nearer candidate is
    taken to be no likelier wrong). 0 when the nearest band with audits has too little
    evidence, or too many wrong: then only exact repeats
    are served, and the semantic ones are MISSes whose answers are compared with the
    candidate they withheld (an audit for free), until the evidence is there."""
    radius, audits, wrong = 0.0, 0, 0
    for bound in BANDS:
        band = f"<{bound:g}"
        in_band = int(counts.get(f"audits:{band}", 0))
        audits += in_band
        wrong += int(counts.get(f"wrong:{band}", 0))
        if in_band == 0:  # no evidence here: opened only with a farther band that has some
            continue  # (a nearer candidate is no likelier wrong than a farther one)
        if wilson(wrong, audits)[1] > max_wrong_rate:
            break
        radius = bound
    return radius
