"""The wrong-answer rate of served semantic HITs, estimated from audits (Wilson's interval,
corrected for the answer check's own error), and the bound's rule: comparisons counted in
evidence groups (vouched by the entry, else the judge's probability band, else the distance
band), each a Beta posterior from a modest prior, opened from the least wrong on while the
served mix stays under the bound. Why: ``docs/design.md``, "Why it is built so".
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# upper bounds of the distance bands an audit is counted in (squared L2), nearest first
BANDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 4.0)
Z_95 = 1.959964
# the evidence group of candidates no farther from their entry than a query found right for
# it (the entry's verified radius): a decision learned per entry
VOUCHED = "vouched"
# the judge's probability bands (lower edges), and the prior wrong rate of each: one minus
# its lower edge (the judge's own calibration, taken at the band's worst)
JUDGED: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
# the prior wrong rate of an unjudged candidate (the cascade's, the static stage's) by
# distance band, and of a vouched one
BAND_PRIOR: dict[str, float] = {"<0.05": 0.05, "<0.1": 0.1, "<0.2": 0.2, "<0.35": 0.3, "<4": 0.6}
VOUCHED_PRIOR = 0.1
# how many observations a prior is worth (modest: a group's own evidence soon outweighs it)
PRIOR_WEIGHT = 20.0
# the margin the served mix keeps under the bound, in standard deviations of its posterior
MIX_Z = 0.5


@dataclass(frozen=True)
class CheckError:
    """How often the answer check errs: different answers called the same
    (``false_same``: a wrong HIT counted right), equal ones called different
    (``false_different``)."""

    false_same: float = 0.0
    false_different: float = 0.0

    def true_rate(self, observed: float) -> float:
        """The wrong rate behind an ``observed`` one: (observed - false_different) /
        (1 - false_same - false_different), inside [0, 1]."""
        scale = 1.0 - self.false_same - self.false_different
        return min(1.0, max(0.0, (observed - self.false_different) / scale))

    def observed_rate(self, true: float) -> float:
        """The wrong rate the check would observe when ``true`` is the truth."""
        return self.false_different + true * (1.0 - self.false_same - self.false_different)


EXACT = CheckError()


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


def estimate(wrong: int, audits: int, check: CheckError = EXACT) -> dict[str, Any]:
    """The estimate with its interval, as ``/v1/stats`` reports it (null with no audits),
    corrected for the answer check's error (``observed``: as the check counted; the
    interval's ends are corrected alike, so it widens by 1 / (1 - both error rates))."""
    low, high = wilson(wrong, audits)
    return {
        "estimate": round(check.true_rate(wrong / audits), 4) if audits else None,
        "low": round(check.true_rate(low), 4),
        "high": round(check.true_rate(high), 4),
        "observed": round(wrong / audits, 4) if audits else None,
        "audits": audits,
        "wrong": wrong,
    }


def summary(counts: Mapping[str, float], check: CheckError = EXACT) -> dict[str, Any]:
    """A namespace's audit hash (``audits``, ``wrong``, ``audits:<band>``, ``wrong:<band>``,
    ``calls``, ``cost_usd``) as its estimate, per band and in total, and what the audits
    cost (the LLM calls they made: a pair audited before is counted again without one)."""
    audits, wrong = int(counts.get("audits", 0)), int(counts.get("wrong", 0))
    by_band = {}
    for bound in BANDS:
        band = f"<{bound:g}"
        in_band = int(counts.get(f"audits:{band}", 0))
        if in_band:
            by_band[band] = estimate(int(counts.get(f"wrong:{band}", 0)), in_band, check)
    return {
        **estimate(wrong, audits, check),
        "check_error": {"false_same": check.false_same, "false_different": check.false_different},
        "by_distance": by_band,
        "bound_evidence": bound_evidence(counts),
        "llm_calls": int(counts.get("calls", 0)),
        "cost_usd": round(float(counts.get("cost_usd", 0.0)), 6),
    }


def evidence_group(distance: float, vouched: bool, confidence: float | None = None) -> str:
    """The group a comparison is counted in for the bound: ``vouched`` when the entry's own
    verified radius reaches this far, else the judge's probability band when it judged the
    candidate, else the distance band."""
    if vouched:
        return VOUCHED
    if confidence is not None:
        return judged_band(confidence)
    return band_of(distance)


def judged_band(confidence: float) -> str:
    """The name of the judge's probability band ``confidence`` falls in: ``"p>=0.8"``..."""
    lower = max((edge for edge in JUDGED if confidence >= edge), default=0.0)
    return f"p>={lower:g}"


def prior_of(group: str) -> float:
    """A group's prior wrong rate (see ``JUDGED``, ``BAND_PRIOR``)."""
    if group.startswith("p>="):
        return 1.0 - float(group[3:])
    return VOUCHED_PRIOR if group == VOUCHED else BAND_PRIOR.get(group, BAND_PRIOR["<4"])


def evidence_interval(
    counted: float, wrong: float, squares: float, z: float = Z_95
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
    return counted * counted / max(squares, counted) if counted > 0 else 0.0


def _group(counts: Mapping[str, float], group: str) -> tuple[float, float, float]:
    """A group's (count, wrong, squared counts); squares default to the count (no repeats)."""
    counted = float(counts.get(f"evidence:{group}", 0))
    return (
        counted,
        float(counts.get(f"evidence_wrong:{group}", 0)),
        float(counts.get(f"evidence_sq:{group}", counted)),
    )


def groups_in(counts: Mapping[str, float]) -> list[str]:
    """The evidence groups ``counts`` names (offered candidates or evidence)."""
    named = (name.partition(":") for name in counts)
    return sorted({group for kind, _, group in named if kind in ("evidence", "offered")})


def bound_evidence(counts: Mapping[str, float]) -> dict[str, Any]:
    """What the bound decides from: each evidence group's comparisons (audits of served
    HITs, and withheld candidates against their MISS's answer) with its interval, the
    candidates it was offered, and its posterior wrong rate."""
    shown = {}
    for group in groups_in(counts):
        counted, wrong, squares = _group(counts, group)
        low, high = evidence_interval(counted, wrong, squares, Z_95)
        mean, _ = posterior(counts, group)
        shown[group] = {
            "estimate": round(wrong / counted, 4) if counted else None,
            "low": round(low, 4),
            "high": round(high, 4),
            "audits": int(counted),
            "wrong": int(wrong),
            "effective": round(effective_count(counted, squares), 1),
            "offered": int(counts.get(f"offered:{group}", 0)),
            "prior": prior_of(group),
            "posterior": round(mean, 4),
        }
    return shown


def posterior(counts: Mapping[str, float], group: str) -> tuple[float, float]:
    """A group's wrong rate as a Beta posterior (mean, variance): its prior, worth
    ``PRIOR_WEIGHT`` observations, updated by its evidence's effective observations (on
    the check's scale)."""
    counted, wrong, squares = _group(counts, group)
    effective = effective_count(counted, squares) if counted else 0.0
    seen_wrong = wrong / counted * effective if counted else 0.0
    prior = prior_of(group)
    alpha = PRIOR_WEIGHT * prior + seen_wrong
    beta = PRIOR_WEIGHT * (1.0 - prior) + effective - seen_wrong
    mean = alpha / (alpha + beta)
    return mean, mean * (1.0 - mean) / (alpha + beta + 1.0)


def open_groups(
    counts: Mapping[str, float], max_wrong_rate: float, check: CheckError = EXACT, ask: str = ""
) -> set[str]:
    """The evidence groups whose candidates may be served under the bound: from the least
    wrong (posterior mean) on, as long as the served mix, each group weighted by the
    candidates it was offered (plus one), keeps its posterior mean plus ``MIX_Z`` standard
    deviations at or under the bound (taken on the check's scale). ``ask``: a group to
    consider even if no candidate of it was seen yet."""
    bound = check.observed_rate(max_wrong_rate)
    groups = set(groups_in(counts)) | ({ask} if ask else set())
    rated = sorted((posterior(counts, group), group) for group in groups)
    opened: set[str] = set()
    weight = mean = variance = 0.0
    for (group_mean, group_variance), group in rated:
        share = float(counts.get(f"offered:{group}", 0)) + 1.0
        total = weight + share
        mixed = (mean * weight + group_mean * share) / total
        spread = (variance * weight * weight + group_variance * share * share) / (total * total)
        if mixed + MIX_Z * math.sqrt(spread) > bound:
            break
        weight, mean, variance = total, mixed, spread
        opened.add(group)
    return opened
