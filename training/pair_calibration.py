"""The pair model's operating point, chosen on the tune pairs through the same lookup
protocol as ``bench/quality.py`` (store q1, look up q2, judge the nearest), never on dev:
the judged radius, the stack of (logit, distance), the cut of best precision at a minimum
recall, the cascade's ``serve_below``, and the static threshold at the same recall."""

import random
from typing import Any

import numpy as np

from index.decision.pair_model import PairModel
from index.decision.spans import refused as refused_by_rule
from training.pair_data import DuplicateClusters, Pair, distinct_pairs
from training.pair_protocol import SAMPLE_PAIRS, Lookups, look_up_in_chunks
from training.pair_rows import TUNE_SEED


def judged_radius(lookups: Lookups) -> float:
    """The radius holding 98% of the tune lookups' right nearest candidates."""
    right = lookups.right
    return float(np.quantile(lookups.distance[right], 0.98)) if right.any() else 1.0


def fit_stack(
    lookups: Lookups, model_probabilities: np.ndarray, radius: float
) -> list[float] | None:
    """Logistic weights of (the model's logit, the distance) for "the nearest candidate is
    right", over the tune candidates inside ``radius``; None (the model alone) when those
    hold fewer than 10 right and 10 wrong candidates."""
    from sklearn.linear_model import LogisticRegression

    inside = lookups.distance < radius
    right = int(lookups.right[inside].sum())
    if min(right, int(inside.sum()) - right) < 10:
        return None
    clipped = np.clip(model_probabilities, 1e-6, 1 - 1e-6)
    features = np.column_stack([np.log(clipped / (1 - clipped)), lookups.distance])
    fitted = LogisticRegression().fit(features[inside], lookups.right[inside])
    return [float(fitted.coef_[0][0]), float(fitted.coef_[0][1]), float(fitted.intercept_[0])]


def operating_point(
    lookups: Lookups, probabilities: np.ndarray, radius: float, min_recall: float
) -> dict[str, float]:
    """The cut of best precision with recall ≥ ``min_recall`` inside ``radius``."""
    right = lookups.right
    duplicates = max(1, lookups.answerable_count)
    inside = lookups.distance < radius
    best = {"radius": radius, "cut": 0.5, "precision": 0.0, "recall": 0.0}
    for cut in np.round(np.arange(0.05, 0.991, 0.01), 2):
        served = inside & (probabilities >= cut)
        if not served.any():
            continue
        precision = float((served & right).sum() / served.sum())
        recall = float((served & right).sum() / duplicates)
        if recall >= min_recall and precision >= best["precision"]:
            best = {"radius": radius, "cut": float(cut), "precision": precision, "recall": recall}
    return best


# how far int8 may fall below fp32 on the tune lookups, in precision and in recall: well
# inside the spread between dev samples
TOLERANCE = 0.005
PROTOCOL = "cluster"  # right = the served question is in the asked one's duplicate cluster


def as_good(
    cheaper: dict[str, float],
    reference: dict[str, float],
    tolerance: tuple[float, float] = (TOLERANCE, TOLERANCE),
) -> bool:
    """``cheaper``'s tune point serves as well as ``reference``'s: its precision and its
    recall each within ``tolerance`` (of precision, of recall) of the reference's."""
    return (
        cheaper["precision"] >= reference["precision"] - tolerance[0]
        and cheaper["recall"] >= reference["recall"] - tolerance[1]
    )


def sample_spread(lookups: Lookups, served: np.ndarray) -> tuple[float, float]:
    """The standard deviation of precision and of recall between the tune samples (one
    store each, of the benchmark's sample size) when ``served`` are the hits: how much a
    figure moves from one sample to the next. (0, 0) with fewer than two samples."""
    samples = np.unique(lookups.sample)
    if len(samples) < 2:
        return 0.0, 0.0
    precision, recall = [], []
    for sample in samples:
        mine = lookups.sample == sample
        right = int((served & lookups.right & mine).sum())
        precision.append(right / max(1, int((served & mine).sum())))
        recall.append(right / max(1, int((lookups.answerable & mine).sum())))
    return float(np.std(precision, ddof=1)), float(np.std(recall, ddof=1))


def cascade_tolerance(
    lookups: Lookups, scores: np.ndarray, point: dict[str, float]
) -> tuple[float, float]:
    """How far the cascade may move the judge's tune precision and recall: less than
    either moves between samples of the benchmark's size (at least TOLERANCE)."""
    served = (lookups.distance < point["radius"]) & (scores >= point["cut"])
    spread = sample_spread(lookups, served)
    return max(TOLERANCE, spread[0]), max(TOLERANCE, spread[1])


def cascade_bound(lookups: Lookups, scores: np.ndarray, point: dict[str, float]) -> float:
    """The distance below which a candidate is served without the model (the rules still
    apply): the largest bound, on a 0.01 grid up to the radius, at which serving so keeps
    the tune point's precision and recall within ``cascade_tolerance`` (every smaller bound
    too)."""
    radius, cut = point["radius"], point["cut"]
    tolerance = cascade_tolerance(lookups, scores, point)
    refused = refused_by_rules(lookups)
    inside = lookups.distance < radius
    answerable = max(1, lookups.answerable_count)
    bound = 0.0
    for low in np.round(np.arange(0.01, radius + 1e-9, 0.01), 2):
        near = (lookups.distance < low) & ~refused
        served = inside & (near | (scores >= cut))
        right = int((served & lookups.right).sum())
        cascade = {"precision": right / max(1, int(served.sum())), "recall": right / answerable}
        if not as_good(cascade, point, tolerance):
            break
        bound = float(low)
    return bound


def cascade_meta(lookups: Lookups, scores: np.ndarray, point: dict[str, float],
                 serve_below: float) -> dict[str, Any]:  # fmt: skip
    """The cascade's bound, the tolerance it was chosen with, and on tune the share of
    served hits the model still judged and the figures served so."""
    inside = lookups.distance < point["radius"]
    refused = refused_by_rules(lookups)
    near = (lookups.distance < serve_below) & ~refused
    served = inside & (near | (scores >= point["cut"]))
    judged = served & (lookups.distance >= serve_below)
    right = int((served & lookups.right).sum())
    tolerance = cascade_tolerance(lookups, scores, point)
    return {
        "serve_below": serve_below,
        "tune_judged_share_of_hits": round(float(judged.sum() / max(1, served.sum())), 4),
        "cascade_tolerance": {
            "precision": round(tolerance[0], 4),
            "recall": round(tolerance[1], 4),
        },
        "tune_with_cascade": {
            "precision": round(right / max(1, int(served.sum())), 4),
            "recall": round(right / max(1, lookups.answerable_count), 4),
        },
    }


def static_at_recall(lookups: Lookups, recall: float) -> dict[str, float]:
    """The static threshold's precision where its recall first reaches ``recall``."""
    right = lookups.right
    duplicates = max(1, lookups.answerable_count)
    for threshold in np.round(np.arange(0.01, 4.0, 0.005), 3):
        hits = lookups.distance < threshold
        reached = float((hits & right).sum() / duplicates)
        if reached >= recall:
            precision = float((hits & right).sum() / max(1, hits.sum()))
            return {"threshold": float(threshold), "precision": precision, "recall": reached}
    return {"threshold": 4.0, "precision": 0.0, "recall": 0.0}


def tune_lookups(tune_pairs: list[Pair], embed: Any) -> Lookups:
    """The lookup protocol over the tune pairs in samples of ``SAMPLE_PAIRS`` (one store per
    sample, as the quality benchmark does): all 7,500 tune questions in one store gave each
    lookup nearly four times the distractors, and an operating point whose recall fell 7
    points on the benchmark's samples."""
    shuffled = list(tune_pairs)
    random.Random(TUNE_SEED).shuffle(shuffled)
    clusters = DuplicateClusters(tune_pairs)  # of the whole split, before any is left out
    return look_up_in_chunks(distinct_pairs(shuffled), embed, SAMPLE_PAIRS, clusters)


def model_probabilities(model: PairModel, lookups: Lookups) -> np.ndarray:
    """The model's probabilities one pair at a time, as the service judges: an int8 build's
    activation scale depends on what a pair is batched with."""
    pairs = list(zip(lookups.queries, lookups.candidates, strict=True))
    return model.probabilities(pairs, chunk=1)


def refused_by_rules(lookups: Lookups) -> np.ndarray:
    """Where a rule refuses the nearest candidate (``index/decision/spans.py``)."""
    pairs = zip(lookups.queries, lookups.candidates, strict=True)
    return np.array([refused_by_rule(q, c) for q, c in pairs], dtype=bool)


def served_scores(lookups: Lookups, combined: np.ndarray) -> np.ndarray:
    """The combined probabilities, 0 where a rule refuses (``index/decision/spans.py``)."""
    served = combined.copy()
    served[refused_by_rules(lookups)] = 0.0
    return served
