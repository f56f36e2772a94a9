"""The judges: what reads a query and a candidate and gives the probability that serving the
candidate's answer is right. Two, best first: the pair model (a cross-encoder over both
texts), the verifier (an MLP over features of the pair); without either, the static
threshold decides on the distance alone."""

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from index.decision.pair_model import PairModel
from index.decision.verifier import Verifier

StageName = Literal["pair-model", "verifier", "static"]


@dataclass(frozen=True)
class JudgedPair:
    """What a judge reads of a query and the candidate it may be served."""

    query: str
    cached: str
    query_vector: np.ndarray
    cached_vector: np.ndarray | None
    distance: float
    runner_up: float | None  # the next candidate's distance, if any
    # the cascade may settle a near candidate on its distance; not under a wrong-rate bound,
    # whose evidence groups need the judge's probability for every candidate served
    cascade: bool = True


class Judge(Protocol):
    name: StageName
    radius: float  # candidates inside it are judged
    cut: float  # the least probability served

    def probability(self, candidate: JudgedPair) -> float | None:
        """P(serving the candidate is right); None: settled on its distance alone (the
        cascade: near enough that the judge would serve it), not judged."""
        ...


class PairModelJudge:
    name: StageName = "pair-model"

    def __init__(self, model: PairModel) -> None:
        self.model = model
        self.radius = model.radius
        self.cut = model.cut

    def probability(self, candidate: JudgedPair) -> float | None:
        return self.model.probability(
            candidate.query, candidate.cached, candidate.distance, candidate.cascade
        )


class VerifierJudge:
    name: StageName = "verifier"

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.radius = verifier.radius
        self.cut = verifier.cut

    def probability(self, candidate: JudgedPair) -> float:
        if candidate.cached_vector is None:  # an entry without its vector: the cosine decides
            return 1.0
        return self.verifier.probability(
            candidate.query,
            candidate.cached,
            candidate.query_vector,
            candidate.cached_vector,
            candidate.distance,
            candidate.runner_up,
        )
