"""The decision's one entry point: a query and its nearest candidates in, a verdict out.

The nearest candidate inside reach that is live (still in Redis) and usable (young enough
for the request's max-age, inside its feedback radius) is the one decided on: what differs
between the two texts (``spans.py``: a rule refuses it, or it differs only by courtesy and
needs no judge), then the judge in force (the static stage: its distance alone), then the
bound. The rules hold in every stage. Only it is
judged; the next candidate's distance is the judge's margin.
"""

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from index.decision.bound import Evidence, reach, within_bound
from index.decision.distance import is_hit
from index.decision.judges import JudgedPair
from index.decision.spans import difference
from index.decision.stage import DecisionStage
from index.decision.verdict import Asked, RefusedBy, Terms, Verdict
from index.store.records import Candidate, StoredEntry

# reads a candidate's entry from the truth (None: gone)
Confirm = Callable[[Candidate], Awaitable[StoredEntry | None]]
# times the judge (the lookup's "verify" stage)
Measure = Callable[[], AbstractContextManager[object]]


def unusable(entry: StoredEntry, distance: float, terms: Terms) -> RefusedBy | None:
    """Why ``entry`` may not answer a query this far away whatever the judge says (None:
    it may): older than the request's max-age, or outside its feedback radius."""
    if terms.max_age_s is not None and entry.age_s(time.time()) > terms.max_age_s:
        return "max-age"
    return None if entry.admits(distance) else "feedback"


class Decision:
    """The stage in force, the bound's evidence, and the loop over candidates."""

    def __init__(
        self, stage: DecisionStage, evidence: Evidence | None = None, learn_radius: float = 0.0
    ) -> None:
        self.stage = stage
        self.evidence = evidence
        self.learn_radius = learn_radius

    def reach(self, terms: Terms) -> float:
        """How far this lookup's candidates are looked at."""
        bound = terms.max_wrong_rate if self.evidence is not None else None
        return reach(terms.radius, bound, self.learn_radius)

    async def decide(
        self,
        asked: Asked,
        terms: Terms,
        candidates: Sequence[Candidate],
        confirm: Confirm,
        measure: Measure = nullcontext,
    ) -> Verdict:
        """The verdict on ``candidates`` (nearest first) for ``asked``."""
        if not candidates:
            return Verdict()
        nearest = candidates[0]
        refused: RefusedBy = "threshold"
        for position, candidate in enumerate(candidates):
            if not is_hit(candidate.distance, self.reach(terms)):
                if position == 0:  # the nearest, past reach: served only as the same prompt
                    return await self._beyond_reach(asked, terms, candidate, confirm)
                break
            entry = await confirm(candidate)
            if entry is None:
                continue  # gone from Redis (and dropped from the local index)
            why = unusable(entry, candidate.distance, terms)
            if why is not None:
                refused = why
                continue
            runner_up = (
                candidates[position + 1].distance if position + 1 < len(candidates) else None
            )
            verdict = await self._judge(asked, terms, entry, candidate.distance, runner_up, measure)
            return Verdict(
                verdict.entry,
                verdict.distance if verdict.entry else nearest.distance,
                verdict.confidence,
                verdict.refused_by,
                nearest.entry_id,
                verdict.withheld,
                verdict.withheld_distance,
            )
        return Verdict(distance=nearest.distance, refused_by=refused, nearest_id=nearest.entry_id)

    async def _beyond_reach(
        self, asked: Asked, terms: Terms, nearest: Candidate, confirm: Confirm
    ) -> Verdict:
        """The nearest candidate past reach: served when it differs from the query by
        courtesy alone (a greeting moves a short prompt's embedding far), else refused by
        the threshold."""
        refused = Verdict(
            distance=nearest.distance, refused_by="threshold", nearest_id=nearest.entry_id
        )
        entry = await confirm(nearest)
        if entry is None or unusable(entry, nearest.distance, terms) is not None:
            return refused
        if not difference(asked.text, entry.prompt).neutral:
            return refused
        if not self._within_bound(asked.ns, terms, entry, nearest.distance):
            return Verdict(
                distance=nearest.distance,
                refused_by="bound",
                nearest_id=nearest.entry_id,
                withheld=entry,
                withheld_distance=nearest.distance,
            )
        return Verdict(entry, nearest.distance, nearest_id=nearest.entry_id)

    async def _judge(
        self,
        asked: Asked,
        terms: Terms,
        entry: StoredEntry,
        distance: float,
        runner_up: float | None,
        measure: Measure,
    ) -> Verdict:
        """The judge in force on one live candidate (inside the radius), then the bound."""
        confidence = None
        judge = terms.judge
        differs = difference(asked.text, entry.prompt)
        if differs.refused_by is not None:
            return Verdict(distance=distance, refused_by=differs.refused_by)
        if differs.neutral:  # the same prompt but for courtesy: no judge needed
            judge = None
        if is_hit(distance, terms.radius) and judge is not None and terms.cut is not None:
            # under a bound every candidate is judged: its evidence group is the judge's
            # probability band, whose prior is the judge's own (not a distance band's)
            pair = JudgedPair(
                asked.text,
                entry.prompt,
                asked.vector,
                entry.vector,
                distance,
                runner_up,
                cascade=terms.max_wrong_rate is None,
            )
            with measure():
                confidence = await self.stage.probability(judge, pair)
            # None: the cascade settled it on its distance
            if confidence is not None and confidence < terms.cut:
                refused: RefusedBy = "verifier" if judge.name == "verifier" else "pair-model"
                return Verdict(distance=distance, confidence=confidence, refused_by=refused)
        if self._within_bound(asked.ns, terms, entry, distance, confidence):
            return Verdict(entry, distance, confidence)
        return Verdict(
            distance=distance,
            confidence=confidence,
            refused_by="bound",
            withheld=entry,
            withheld_distance=distance,
        )

    def _within_bound(
        self,
        ns: str,
        terms: Terms,
        entry: StoredEntry,
        distance: float,
        confidence: float | None = None,
    ) -> bool:
        if terms.max_wrong_rate is None or self.evidence is None:
            return True
        counts = self.evidence.counts(ns)
        return within_bound(
            counts,
            entry,
            distance,
            terms.radius,
            terms.max_wrong_rate,
            confidence,
            self.evidence.check_error,
        )
