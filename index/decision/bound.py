"""The operator's bound on the wrong-answer rate, applied to one candidate: how far a
lookup looks, and whether a candidate may be served, from the namespace's audit evidence
(``wrong_rate``) as the auditor last read it."""

from collections.abc import Mapping
from typing import Protocol

from index.decision.wrong_rate import EXACT, CheckError, evidence_group, open_groups
from index.store.records import StoredEntry


class Evidence(Protocol):
    """The audit counts of a namespace as last read (read again in the background), and
    how often the answer check behind them errs."""

    @property
    def check_error(self) -> CheckError: ...

    def counts(self, ns: str) -> Mapping[str, float] | None:
        """None: none read yet (then the groups' priors alone decide)."""
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
    confidence: float | None = None,
    check: CheckError = EXACT,
) -> bool:
    """Whether the candidate's evidence group (vouched by its entry, else the judge's
    ``confidence`` band, else the distance band) is open under the bound; past ``radius``
    only a vouched candidate may be."""
    vouched = entry.vouches(distance)
    if not vouched and distance >= radius:
        return False
    group = evidence_group(distance, vouched, confidence)
    return group in open_groups(counts or {}, max_wrong_rate, check, ask=group)
