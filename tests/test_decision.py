"""The decision room's entry point on fixed candidates: the rules over what differs hold in
every stage (the static threshold too), a courtesy-only difference is served without the
judge, and a refusal names what refused."""

import asyncio

import numpy as np
import pytest

from index.decision.decide import Decision
from index.decision.judges import JudgedPair, StageName
from index.decision.stage import DecisionStage
from index.decision.verdict import Asked, Terms
from index.store.records import Candidate, StoredEntry


class CountingJudge:
    """A judge that serves everything it is asked about, and counts the asks."""

    name: StageName = "pair-model"
    radius = 0.5
    cut = 0.5

    def __init__(self) -> None:
        self.asked: list[JudgedPair] = []

    def probability(self, candidate: JudgedPair) -> float:
        self.asked.append(candidate)
        return 0.9


def entry(prompt: str) -> StoredEntry:
    return StoredEntry("e1", prompt, "an answer", 0.0, 0.0, 0.0, 0, 0, 0)


def decide(query: str, cached: str, terms: Terms, distance: float = 0.1):  # type: ignore[no-untyped-def]
    stage = DecisionStage(None, None)

    async def confirm(candidate: Candidate) -> StoredEntry | None:
        return entry(cached)

    asked = Asked("default", query, np.zeros(384, dtype=np.float32))
    return asyncio.run(Decision(stage).decide(asked, terms, [Candidate("e1", distance)], confirm))


@pytest.mark.parametrize("judged", [False, True], ids=["static", "pair-model"])
@pytest.mark.parametrize(
    ("query", "cached", "rule"),
    [
        ("Is 150 mg of aspirin a safe daily dose?", "Is 300 mg of aspirin a safe daily dose?",
         "rule:numbers"),
        ("Why did Athens fight Sparta?", "Why did Sparta fight Athens?", "rule:swapped"),
        ("Give me three tips for sleeping better. Reply in Spanish.",
         "Give me three tips for sleeping better.", "rule:instruction"),
        ("Rename `load_rows` so it reads clearly.", "Rename `load_cols` so it reads clearly.",
         "rule:code"),
    ],
)  # fmt: skip
def test_a_rule_refuses_in_every_stage_and_names_itself(
    query: str, cached: str, rule: str, judged: bool
) -> None:
    judge = CountingJudge() if judged else None
    terms = Terms(0.5, judge, 0.5 if judged else None)
    verdict = decide(query, cached, terms)
    assert verdict.entry is None and verdict.refused_by == rule
    assert judge is None or judge.asked == []  # refused before the judge


def test_a_courtesy_only_difference_is_served_without_the_judge() -> None:
    judge = CountingJudge()
    verdict = decide("Good evening! Summarise the plot of Hamlet, please.",
                     "Summarise the plot of Hamlet.", Terms(0.5, judge, 0.5))  # fmt: skip
    assert verdict.entry is not None and verdict.confidence is None and judge.asked == []


def test_a_candidate_outside_the_radius_is_refused_by_the_threshold() -> None:
    verdict = decide("What is a monad?", "What is a functor?", Terms(0.3), distance=0.6)
    assert verdict.entry is None and verdict.refused_by == "threshold"


def test_a_long_prompt_with_an_edit_no_rule_names_is_refused() -> None:
    task = " ".join(["The quarterly report lists revenue by region and product line."] * 5)
    verdict = decide(task + " Focus on the northern region.",
                     task + " Focus on the southern region.", Terms(0.5))  # fmt: skip
    assert verdict.refused_by == "rule:long-edit"


def test_the_same_prompt_but_for_a_greeting_is_served_past_the_radius() -> None:
    """A greeting moves a short prompt's embedding far; the nearest candidate past reach is
    served when courtesy is all that differs, and refused by the threshold otherwise."""
    greeted = decide("Good afternoon, could you help me? What is a monad?", "What is a monad?",
                     Terms(0.3), distance=0.6)  # fmt: skip
    assert greeted.entry is not None and greeted.distance == 0.6
    other = decide("What is a functor?", "What is a monad?", Terms(0.3), distance=0.6)
    assert other.entry is None and other.refused_by == "threshold"
