"""The benchmark's prompt variants (bench/prompt_variants.py) and Quora look-alikes
(bench/lookalikes.py): each kind makes the edit it names, and only that edit."""

import random

import pytest

from bench import lookalikes
from bench import prompt_variants as pv
from training.pair_data import Pair

PROSE = "Janet has 16 ducks and sells eggs to Maria in Paris. How much does she make, in dollars?"
CODE = (
    "Find the bug in this code and fix it.\n\n```python\ndef total(items, limit):\n"
    "    count = 0\n    for item in items:\n        if item < limit:\n"
    "            count = count + item\n    return count\n```"
)
SEEDS = range(30)


def variants(kind: pv.VariantFn, prompt: str, split: pv.Split) -> list[pv.Variant]:
    made = [kind(prompt, random.Random(seed), split) for seed in SEEDS]
    return [v for v in made if v is not None]


def test_phrasing_sets_are_disjoint() -> None:
    for phrasings in (pv.NUMBER_EDITS, pv.ENTITIES, pv.CODE_EDITS, pv.ADDED_INSTRUCTIONS,
                      pv.PREAMBLES, pv.WHITESPACE_EDITS, pv.PUNCTUATION_EDITS, pv.CASING_EDITS,
                      pv.POLITE_PREFIXES, pv.THANKS, pv.GREETINGS, pv.FRAMINGS):  # fmt: skip
        assert not set(phrasings.tune) & set(phrasings.held_out)
        assert len(phrasings.tune) >= 2 and len(phrasings.held_out) >= 2
    for found in (pv.CONSTRAINTS.tune, pv.CONSTRAINTS.held_out):
        assert len(found) >= 2
    assert not {p for o in pv.CONSTRAINTS.tune for p in o} & {
        p for o in pv.CONSTRAINTS.held_out for p in o
    }


@pytest.mark.parametrize("split", pv.SPLITS)
def test_number_changed_changes_one_number_only(split: pv.Split) -> None:
    made = variants(pv.number_changed, PROSE, split)
    assert made and all(v.split == split for v in made)
    assert {v.phrasing for v in made} == set(pv.NUMBER_EDITS.of(split))
    for variant in made:
        number = variant.text.split("Janet has ")[1].split(" ducks")[0]
        assert number.isdigit() and number != "16"
        assert variant.text.split(" ducks")[1] == PROSE.split(" ducks")[1]
    assert pv.number_changed("No digits here.", random.Random(1)) is None


def test_entity_changed_renames_a_name_not_the_first_word() -> None:
    made = variants(pv.entity_changed, PROSE, "held_out")
    assert made
    for variant in made:
        assert variant.phrasing in pv.ENTITIES.held_out and variant.phrasing in variant.text
        assert variant.text.startswith("Janet has") and variant.text != PROSE


@pytest.mark.parametrize("split", pv.SPLITS)
def test_code_changed_edits_the_code_and_keeps_the_task(split: pv.Split) -> None:
    made = variants(pv.code_changed, CODE, split)
    assert {v.phrasing for v in made} <= set(pv.CODE_EDITS.of(split)) and made
    for variant in made:
        assert variant.text.startswith("Find the bug in this code and fix it.\n\n```python\n")
        assert variant.text != CODE
    assert pv.code_changed(PROSE, random.Random(1)) is None


def test_code_is_found_fenced_or_bare() -> None:
    bare = "Complete this function.\n\ndef f(x):\n    y = x + 1\n    return y\n"
    assert pv.has_code(CODE) and pv.has_code(bare) and not pv.has_code(PROSE)


def test_instruction_added_then_removed_round_trips_and_keeps_its_split() -> None:
    for split in pv.SPLITS:
        dressed = pv.with_instruction(PROSE, random.Random(3), split)
        removed = pv.instruction_removed(dressed.text, random.Random(3))
        assert removed is not None and removed.text == PROSE and removed.split == split
        added = pv.instruction_added(PROSE, random.Random(4), split)
        assert added is not None and added.phrasing in pv.ADDED_INSTRUCTIONS.of(split)
        assert PROSE in added.text
    assert pv.instruction_removed(PROSE, random.Random(1)) is None


def test_constraint_changed_swaps_within_its_options() -> None:
    for split in pv.SPLITS:
        dressed = pv.with_constraint(PROSE, random.Random(5), split)
        changed = pv.constraint_changed(dressed.text, random.Random(6))
        assert changed is not None and changed.split == split and changed.text != dressed.text
        assert changed.text.startswith(PROSE)
    assert pv.constraint_changed("Answer in 100 words.", random.Random(1)).text in (  # type: ignore[union-attr]
        "Answer in 300 words.", "Answer in 50 words.",
    )  # fmt: skip


def test_shared_template_keeps_the_preamble_and_changes_the_task() -> None:
    others = ["Write a haiku about rain.", "What is 7 times 8?"]
    kind = pv.shared_template(others)
    for split in pv.SPLITS:
        dressed = pv.with_preamble(PROSE, random.Random(7), split)
        variant = kind(dressed.text, random.Random(8), "tune")
        assert variant is not None and variant.split == split
        preamble = dressed.text[: -len(PROSE)]
        assert variant.text.startswith(preamble) and variant.text[len(preamble) :] in others
    assert kind(PROSE, random.Random(1), "tune") is None


@pytest.mark.parametrize(
    "kind", [pv.whitespace, pv.punctuation, pv.casing, pv.polite_prefix, pv.trailing_thanks]
)
def test_should_serve_edits_leave_the_words_and_the_code_alone(kind: pv.VariantFn) -> None:
    for split in pv.SPLITS:
        for variant in variants(kind, CODE, split):
            assert variant.split == split
            # the code block is untouched: case, punctuation and whitespace matter there
            assert CODE[CODE.index("```") :].rstrip() in variant.text
            words = [w.strip(".,!?").lower() for w in variant.text.split()]
            original = [w.strip(".,!?").lower() for w in CODE.split()]
            assert all(w in words for w in original if w)


def test_casing_and_punctuation_draw_only_their_split() -> None:
    for kind, phrasings in ((pv.casing, pv.CASING_EDITS), (pv.punctuation, pv.PUNCTUATION_EDITS),
                            (pv.whitespace, pv.WHITESPACE_EDITS)):  # fmt: skip
        for split in pv.SPLITS:
            made = {v.phrasing for v in variants(kind, PROSE, split)}
            assert made and made <= set(phrasings.of(split))


def test_greeting_and_framing_are_moved_or_swapped() -> None:
    for split in pv.SPLITS:
        greeted = pv.with_greeting(PROSE, random.Random(9), split)
        moved = pv.reordered_greeting(greeted.text, random.Random(9))
        assert moved is not None and moved.text == f"{PROSE}\n{greeted.phrasing}"
        framed = pv.with_framing(PROSE, random.Random(10), "tune")
        swapped = pv.framing_synonym(framed.text, random.Random(11), split)
        assert swapped is not None and swapped.phrasing in pv.FRAMINGS.of(split)
        assert swapped.text.endswith(PROSE) and swapped.text != framed.text
    assert pv.reordered_greeting(PROSE, random.Random(1)) is None
    assert pv.framing_synonym(PROSE, random.Random(1), "tune") is None


def test_every_kind_is_registered_once_with_its_dressing() -> None:
    found = pv.kinds(["another task"])
    names = [k.name for k in found]
    assert len(names) == len(set(names)) == 14
    assert {k.needs for k in found} - {None} == set(pv.DRESSINGS)


@pytest.mark.parametrize(
    ("kind", "question", "split", "expected"),
    [
        ("relation_swapped", "How do I convert dollars from Canada to India?", "tune",
         "How do I convert dollars from India to Canada?"),
        ("relation_swapped", "How are Indians in Canada treated?", "held_out",
         "How are Canada in Indians treated?"),
        ("negated", "Why is the sky blue?", "tune", "Why isn't the sky blue?"),
        ("negated", "Should I learn Rust?", "held_out", "Shouldn't I learn Rust?"),
        ("comparative_swapped", "Is tea better than coffee?", "tune",
         "Is tea worse than coffee?"),
        ("antonym", "When should I sell my shares?", "tune", "When should I buy my shares?"),
        ("antonym", "What are the pros of nuclear power?", "held_out",
         "What are the cons of nuclear power?"),
        ("sibling", "Which Android phone is best?", "held_out", "Which iOS phone is best?"),
    ],
)  # fmt: skip
def test_lookalike_kinds(kind: str, question: str, split: pv.Split, expected: str) -> None:
    variant = lookalikes.KINDS[kind](question, random.Random(0), split)
    assert variant is not None and variant.text == expected and variant.split == split


def test_lookalike_word_lists_split_disjointly() -> None:
    for table in (lookalikes.COMPARATIVES, lookalikes.ANTONYMS, lookalikes.SIBLINGS):
        tune = {w for pair in table["tune"] for w in pair}
        held_out = {w for pair in table["held_out"] for w in pair}
        assert tune and held_out
        assert not {frozenset(p) for p in table["tune"]} & {frozenset(p) for p in table["held_out"]}
    assert not set(lookalikes.NEGATIONS["tune"]) & set(lookalikes.NEGATIONS["held_out"])


def test_generate_stores_each_question_once_and_labels_the_controls() -> None:
    questions = ["Why is the sky blue?", "Is Java faster than Python?", "How do I buy a car?",
                 "Which Android phone is best?", "Is tea better than coffee?"]  # fmt: skip
    duplicates = [Pair("How old is the moon?", "What is the age of the moon?", True),
                  Pair("How tall is Everest?", "How deep is the sea?", False)]  # fmt: skip
    made = lookalikes.generate(questions, duplicates, per_kind=4, seed=1)
    assert len(made.stored) == len(set(made.stored))
    assert {p.stored for p in made.pairs} == set(made.stored)
    served = [p for p in made.pairs if p.serve]
    assert [(p.stored, p.asked) for p in served] == [
        ("How old is the moon?", "What is the age of the moon?")
    ]
    assert all(p.asked != p.stored for p in made.pairs)
    assert len({p.stored for p in made.pairs if not p.serve}) == len(
        [p for p in made.pairs if not p.serve]
    )
