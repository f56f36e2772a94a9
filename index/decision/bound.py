"""The operator's bound on the wrong-answer rate, applied to one candidate: how far a
lookup looks, and whether a candidate may be served, from the namespace's audit evidence
(``wrong_rate``) as the auditor last read it."""

from collections.abc import Mapping
from typing import Protocol

from index.decision.wrong_rate import served_radius, vouched_open
from index.store.records import StoredEntry


class Evidence(Protocol):
    """The audit counts of a namespace as last read (read again in the background)."""

    def counts(self, ns: str) -> Mapping[str, float] | None:
        """None: none read yet (then nothing semantic is served under a bound)."""
        ...


def reach(radius: float, max_wrong_rate: float | None, learn_radius: float) -> float:
    """How far candidates are looked at: the radius; under a bound as far as
    ``learn_radius`` too (past the radius a candidate serves only inside its entry's
    verified radius, and otherwise teaches it)."""
    return radius if max_wrong_rate is None else max(radius, learn_radius)


def within_bound(
    counts: Mapping[str, float] | None,
    entry: StoredEntry,
    distance: float,
    radius: float,
    max_wrong_rate: float,
) -> bool:
    """Inside the entry's verified radius when the vouched group holds the bound; else
    inside ``radius`` and the distance bands that hold it. No evidence: not served."""
    if counts is None:
        return False
    if entry.vouches(distance):
        return vouched_open(counts, max_wrong_rate)
    return distance < radius and distance < served_radius(counts, max_wrong_rate)
