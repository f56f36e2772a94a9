"""Each variant kind of the real-prompt benchmark, on prompts written here and with its
held-out phrasings only (fresh examples the rules were not written from), decided as the
service decides before any judge: a prompt (``is_prompt``) is served only when one of its
courteous forms is the stored prompt's canonical form; a question when what differs is
courtesy alone. Must-not-serve kinds are never served so; should-serve kinds are."""

import random

import pytest

from bench.prompt_variants import DRESSINGS, Kind, kinds
from index.decision.courtesy import canonical, courtesy_variants, is_prompt
from index.decision.spans import difference
from service.keying.normalise import collapse_whitespace

PROMPTS = [
    "How many litres of water should a 70 kg adult drink on a hot day in Madrid?",
    "You are helping a small bakery in Lyon. They sell 40 croissants each morning and close "
    "at 2 pm. Suggest three ways to sell out earlier. Keep it practical for Marie, the owner.",
    "Explain what this function does.\n\ndef total(items):\n    result = 0\n    for price in "
    "items:\n        result = result + price\n    return result",
    "Our hiking club plans a 12 km walk from Grindelwald to Wengen on 14 June with 18 members. "
    "Two of them use walking poles and one has a knee injury. The cable car back costs 32 "
    "francs. Write a short briefing for the group covering the route, timing, what to pack, "
    "and what to do if the weather turns, and mention that Thomas leads the group.",
]
OTHER_TASKS = ["Summarise the minutes of the last board meeting in five bullet points."]


def served(asked: str, stored: str) -> bool:
    """Whether the decision serves ``stored``'s answer for ``asked`` before any judge."""
    asked, stored = collapse_whitespace(asked), collapse_whitespace(stored)
    if is_prompt(asked) or is_prompt(stored):
        return canonical(stored) in courtesy_variants(asked)
    return difference(asked, stored).neutral


def cases(group: str) -> list[tuple[str, str, str]]:
    found = []
    for kind in kinds(OTHER_TASKS):
        if kind.group != group:
            continue
        for number, prompt in enumerate(PROMPTS):
            for seed in range(6):
                made = _variant(kind, prompt, random.Random(seed * 31 + number))
                if made is not None:
                    found.append((kind.name, *made))
    return found


def _variant(kind: Kind, prompt: str, rng: random.Random) -> tuple[str, str] | None:
    stored = DRESSINGS[kind.needs](prompt, rng, "held_out").text if kind.needs else prompt
    variant = kind.make(stored, rng, "held_out")
    if variant is None or variant.text == stored:
        return None
    assert variant.split == "held_out"
    return stored, variant.text


@pytest.mark.parametrize(("kind", "stored", "asked"), cases("must_not_serve"))
def test_an_answer_changing_edit_is_never_served(kind: str, stored: str, asked: str) -> None:
    assert not served(asked, stored), kind


@pytest.mark.parametrize(("kind", "stored", "asked"), cases("should_serve"))
def test_an_answer_neutral_edit_is_served(kind: str, stored: str, asked: str) -> None:
    assert served(asked, stored), kind


def test_every_kind_is_tried() -> None:
    tried = {kind for kind, _, _ in cases("must_not_serve") + cases("should_serve")}
    assert tried == {kind.name for kind in kinds(OTHER_TASKS)}
