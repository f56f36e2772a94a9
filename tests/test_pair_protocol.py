"""The hit-quality protocol's labels (``training/pair_protocol.py``): a hit is right when the
stored question it serves is in the asked question's duplicate cluster, not only when it is
the pair's own q1. Fast: the embedding is a stand-in that maps each text to a vector of its
own, so that which stored question is nearest is chosen by the test."""

from collections.abc import Sequence

import numpy as np

from training.pair_calibration import cascade_bound, sample_spread
from training.pair_data import DuplicateClusters, Pair
from training.pair_protocol import Embed, Lookups, look_up_pairs, own_pair_point, point


def test_clusters_are_the_closure_of_duplicate_labels_and_the_same_text() -> None:
    clusters = DuplicateClusters([
        Pair("How do I learn Python?", "How can I learn Python?", True),
        Pair("How can I learn Python?", "What is the best way to learn Python?", True),
        Pair("How do I learn Python?", "How do I learn Java?", False),
    ])  # fmt: skip
    assert clusters.same("What is the best way to learn Python?", "how do I  learn python?")
    assert not clusters.same("How do I learn Java?", "How do I learn Python?")
    assert clusters.same("An unlabelled question?", "an unlabelled   QUESTION?")


def embed_as(nearest: dict[str, str]) -> Embed:
    """Vectors where each query's nearest stored question is the one named in ``nearest``."""
    names: dict[str, int] = {}

    def embed(texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            target = nearest.get(text, text)
            slot = names.setdefault(target, len(names))
            row = np.zeros(64, dtype=np.float32)
            row[slot] = 1.0
            if text in nearest:  # near its target, not on it
                row[63] = 0.1
            rows.append(row / np.linalg.norm(row))
        return np.stack(rows)

    return embed


def test_a_hit_on_another_pairs_entry_of_the_same_cluster_is_right() -> None:
    pairs = [
        Pair("How do I learn Python?", "How can I learn Python?", True),
        # another pair stores a labelled duplicate of the first pair's question
        Pair("What is the best way to learn Python?", "Best way to pick up Python?", True),
        Pair("How do I bake bread?", "How do I bake a cake?", False),
    ]
    link = Pair("How can I learn Python?", "What is the best way to learn Python?", True)
    labels = [*pairs, link]  # a label from elsewhere in the split joins the two clusters
    embed = embed_as({
        "How can I learn Python?": "What is the best way to learn Python?",  # another pair's
        "Best way to pick up Python?": "What is the best way to learn Python?",  # its own
        "How do I bake a cake?": "How do I bake bread?",  # its own, but not a duplicate
    })  # fmt: skip
    lookups = look_up_pairs(pairs, embed, DuplicateClusters(labels))
    assert lookups.right.tolist() == [True, True, False]
    assert lookups.own_right.tolist() == [False, True, False]  # the old rule
    assert lookups.answerable.tolist() == [True, True, False]
    every_hit = np.ones(3, dtype=bool)
    corrected = point(lookups, every_hit, 1.0, None)
    old = own_pair_point(lookups, every_hit, 1.0, None)
    assert (corrected.precision, corrected.recall) == (2 / 3, 1.0)
    assert (old.precision, old.recall) == (1 / 3, 0.5)


def test_an_exact_repeat_stored_by_another_pair_is_right() -> None:
    pairs = [Pair("Is the moon made of cheese?", "Is the Moon made of cheese ?", False),
             Pair("Is the moon made of cheese ?", "Why is the sky blue?", False)]  # fmt: skip
    embed = embed_as({"Is the Moon made of cheese ?": "Is the moon made of cheese ?"})
    lookups = look_up_pairs(pairs, embed)
    assert lookups.right[0] and not lookups.own_right[0]


def lookups_of(distance: list[float], right: list[bool], sample: list[int]) -> Lookups:
    """Lookups as the protocol would make them, with the given nearest distances, verdicts and
    samples (texts the rules let through)."""
    count = len(distance)
    vectors = np.zeros((count, 4), dtype=np.float32)
    return Lookups(
        queries=[f"how does {'x' * (i + 1)} work" for i in range(count)],
        candidates=[f"how is {'y' * (i + 1)} made" for i in range(count)],
        query_vectors=vectors,
        candidate_vectors=vectors,
        distance=np.array(distance),
        runner_up=np.full(count, np.nan),
        own=np.array(right),
        duplicate=np.array(right),
        in_cluster=np.array(right),
        answerable=np.array(right),
        sample=np.array(sample),
    )


def test_the_cascade_may_cost_what_the_figures_move_between_samples_and_no_more() -> None:
    # two samples of ten the judge serves at distance 0.3: eight right in one, ten in the
    # other (precision 0.8 and 1.0); and one wrong candidate at 0.05 that the judge refuses
    served_by_judge = [True] * 8 + [False] * 2 + [True] * 10
    distance = [0.3] * 20 + [0.05]
    right = [*served_by_judge, False]
    scores = np.array([1.0] * 20 + [0.0])
    point = {"radius": 0.5, "cut": 0.5, "precision": 18 / 20, "recall": 1.0}

    two_samples = lookups_of(distance, right, [0] * 10 + [1] * 10 + [1])
    spread = sample_spread(two_samples, scores >= 0.5)
    assert spread == (float(np.std([0.8, 1.0], ddof=1)), 0.0)
    # serving the refused candidate on its distance costs 4.3 points of precision: less than
    # the 14 points precision moves between the samples, so the cascade may reach past it
    assert cascade_bound(two_samples, scores, point) == 0.5

    one_sample = lookups_of(distance, right, [0] * 21)
    assert sample_spread(one_sample, scores >= 0.5) == (0.0, 0.0)
    # one sample: no spread to go by; the cascade stops short of the wrong candidate
    assert cascade_bound(one_sample, scores, point) == 0.05
