"""What the decision reads of one lookup, and what it answers."""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from index.decision.judges import Judge
from index.decision.spans import Rule
from index.store.records import StoredEntry

# why the nearest candidate was not served: outside the radius, a rule over what differs,
# the judge in force, the entry's feedback radius, the request's max-age, the bound
RefusedBy = Literal["threshold", "pair-model", "verifier", "feedback", "max-age", "bound"] | Rule


@dataclass(frozen=True)
class Terms:
    """How one lookup decides, the request's, tenant's and service's choices resolved."""

    radius: float  # candidates nearer are judged (the static stage: served)
    judge: Judge | None = None  # the stage in force when the lookup began (None: static)
    cut: float | None = None  # the least probability the judge serves
    max_wrong_rate: float | None = None  # a bound on the audited wrong-answer rate
    max_age_s: float | None = None  # entries older are not served (``Cache-Control``)


@dataclass(frozen=True)
class Asked:
    """The query as the decision reads it."""

    ns: str
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class Verdict:
    """Served (``entry`` set) or not, and why. ``distance``: the served candidate's, else
    the nearest candidate's (None: no candidate at all)."""

    entry: StoredEntry | None = None
    distance: float | None = None
    confidence: float | None = None  # the judge's probability, when it ran
    refused_by: RefusedBy | None = None
    nearest_id: str | None = None
    # the candidate the bound withheld (compared with the MISS's answer), and its distance
    withheld: StoredEntry | None = None
    withheld_distance: float = 0.0
