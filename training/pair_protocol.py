"""The hit-quality protocol, in process: store each pair's q1, look up each q2.

A lookup's nearest stored question is a *right* hit when it is in the asked question's
duplicate cluster (``DuplicateClusters``: the closure of the duplicate labels, or the same
text). Precision = right hits / hits; recall = right hits / the lookups whose cluster has a
stored question (``answerable``). The earlier rule, right only when it is the pair's own q1
and the pair is labelled duplicate (recall over duplicate pairs), called right answers
wrong; it is kept as ``own_right`` to report beside. ``bench/quality.py`` runs the same
protocol through the HTTP API; this version is what training, tuning and calibration use.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from index.decision.verifier import Features, Verifier
from training.pair_data import DuplicateClusters, Pair

Embed = Callable[[Sequence[str]], np.ndarray]


def same_question(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass
class Lookups:
    queries: list[str]
    candidates: list[str]  # each query's nearest stored question
    query_vectors: np.ndarray
    candidate_vectors: np.ndarray
    distance: np.ndarray  # squared L2 to the nearest
    runner_up: np.ndarray  # to the second nearest (nan: none)
    own: np.ndarray  # the nearest is the pair's own q1
    duplicate: np.ndarray
    in_cluster: np.ndarray  # the nearest is in the query's duplicate cluster
    answerable: np.ndarray  # the query's cluster has a stored question in this sample
    sample: np.ndarray  # which sample (one store each) the lookup was made in

    @property
    def right(self) -> np.ndarray:
        """Where a hit would serve the right answer (the nearest is in the query's
        duplicate cluster)."""
        return self.in_cluster

    @property
    def answerable_count(self) -> int:
        """Recall's denominator: lookups that had a right answer to find."""
        return int(self.answerable.sum())

    @property
    def own_right(self) -> np.ndarray:
        """The earlier rule (the pair's own q1, labelled duplicate), for comparison."""
        right: np.ndarray = self.own & self.duplicate
        return right

    def features(self, features: Features) -> np.ndarray:
        rows: np.ndarray = np.stack(
            [
                features.row(
                    q, c, qv, cv, float(d), None if np.isnan(r) else float(r)
                )
                for q, c, qv, cv, d, r in zip(
                    self.queries, self.candidates, self.query_vectors,
                    self.candidate_vectors, self.distance, self.runner_up, strict=True,
                )
            ]
        )  # fmt: skip
        return rows


SAMPLE_PAIRS = 2000  # pairs stored together in one sample, as bench/quality.py does


def look_up_pairs(
    pairs: Sequence[Pair], embed: Embed, clusters: DuplicateClusters | None = None
) -> Lookups:
    """``clusters``: the duplicate clusters of the whole split (default: of these pairs)."""
    clusters = clusters or DuplicateClusters(pairs)
    stored = list(dict.fromkeys(" ".join(p.q1.split()) for p in pairs))
    stored_vectors = np.asarray(embed(stored), dtype=np.float32)
    queries = [" ".join(p.q2.split()) for p in pairs]
    query_vectors = np.asarray(embed(queries), dtype=np.float32)
    index = faiss.IndexFlatL2(stored_vectors.shape[1])
    index.add(stored_vectors)
    distances, ids = index.search(query_vectors, 2)
    nearest = ids[:, 0]
    runner_up = np.where(ids[:, 1] >= 0, distances[:, 1], np.nan)
    candidates = [stored[i] for i in nearest]
    stored_clusters = {clusters.of(question) for question in stored}
    return Lookups(
        queries=queries,
        candidates=candidates,
        query_vectors=query_vectors,
        candidate_vectors=stored_vectors[nearest],
        distance=distances[:, 0].astype(np.float64),
        runner_up=runner_up.astype(np.float64),
        own=np.array([same_question(c, p.q1) for c, p in zip(candidates, pairs, strict=True)]),
        duplicate=np.array([p.duplicate for p in pairs]),
        in_cluster=np.array(
            [clusters.same(c, q) for c, q in zip(candidates, queries, strict=True)]
        ),
        answerable=np.array([clusters.of(q) in stored_clusters for q in queries]),
        sample=np.zeros(len(queries), dtype=np.int64),
    )


def remembered(embed: Embed, texts: Sequence[str]) -> Embed:
    """``embed``, computed once for ``texts`` (one batch) and then looked up."""
    unique = list(dict.fromkeys(" ".join(t.split()) for t in texts))
    vectors = dict(zip(unique, np.asarray(embed(unique), dtype=np.float32), strict=True))

    def lookup(batch: Sequence[str]) -> np.ndarray:
        return np.stack([vectors[" ".join(t.split())] for t in batch])

    return lookup


def look_up_in_chunks(
    pairs: Sequence[Pair], embed: Embed, chunk: int, clusters: DuplicateClusters | None = None
) -> Lookups:
    """The protocol over consecutive samples of ``chunk`` pairs (one store per sample),
    so that a lookup meets as many stored questions as it would in a sample that size.
    ``clusters``: of the whole split (default: of these pairs)."""
    clusters = clusters or DuplicateClusters(pairs)
    parts = [
        look_up_pairs(pairs[i : i + chunk], embed, clusters) for i in range(0, len(pairs), chunk)
    ]
    return Lookups(
        queries=[q for part in parts for q in part.queries],
        candidates=[c for part in parts for c in part.candidates],
        query_vectors=np.concatenate([part.query_vectors for part in parts]),
        candidate_vectors=np.concatenate([part.candidate_vectors for part in parts]),
        distance=np.concatenate([part.distance for part in parts]),
        runner_up=np.concatenate([part.runner_up for part in parts]),
        own=np.concatenate([part.own for part in parts]),
        duplicate=np.concatenate([part.duplicate for part in parts]),
        in_cluster=np.concatenate([part.in_cluster for part in parts]),
        answerable=np.concatenate([part.answerable for part in parts]),
        sample=np.concatenate([np.full(len(part.queries), n) for n, part in enumerate(parts)]),
    )


@dataclass(frozen=True)
class Point:
    """One operating point: hit when distance < radius and (verifier) probability >= cut."""

    radius: float
    cut: float | None
    precision: float
    recall: float
    hit_rate: float
    hits: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def score(
    hits: np.ndarray, right: np.ndarray, duplicates: int, radius: float, cut: float | None
) -> Point:
    """Precision, recall and hit rate of ``hits`` where ``right`` marks a right answer;
    ``duplicates``: recall's denominator (the lookups with a right answer to find)."""
    correct = int((hits & right).sum())
    count = int(hits.sum())
    return Point(
        radius=radius,
        cut=cut,
        precision=correct / count if count else 1.0,
        recall=correct / max(1, duplicates),
        hit_rate=count / len(hits),
        hits=count,
    )


def point(lookups: Lookups, hits: np.ndarray, radius: float, cut: float | None) -> Point:
    return score(hits, lookups.right, lookups.answerable_count, radius, cut)


def own_pair_point(lookups: Lookups, hits: np.ndarray, radius: float, cut: float | None) -> Point:
    """``point`` by the earlier rule (own q1, labelled duplicate; recall over duplicates)."""
    return score(hits, lookups.own_right, int(lookups.duplicate.sum()), radius, cut)


def static_curve(lookups: Lookups, radii: Sequence[float]) -> list[Point]:
    return [point(lookups, lookups.distance < r, r, None) for r in radii]


def verifier_curve(
    lookups: Lookups, probabilities: np.ndarray, radius: float, cuts: Sequence[float]
) -> list[Point]:
    inside = lookups.distance < radius
    return [point(lookups, inside & (probabilities >= c), radius, c) for c in cuts]


def wilson_bounds(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval on a proportion (z = 1.96: two-sided 95%); (0, 1) when
    there were no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return max(0.0, float((centre - spread) / scale)), min(1.0, float((centre + spread) / scale))


def wilson_lower(successes: int, trials: int, z: float = 1.64) -> float:
    """A one-sided 95% lower bound on a proportion."""
    return wilson_bounds(successes, trials, z)[0] if trials else 0.0


def best_point(points: Sequence[Point], target_precision: float, cautious: bool) -> Point | None:
    """The point of highest recall whose precision reaches the target (``cautious``: whose
    95% lower bound does, so that it holds on unseen pairs too)."""

    def reaches(p: Point) -> bool:
        if not cautious:
            return p.precision >= target_precision
        return wilson_lower(round(p.precision * p.hits), p.hits) >= target_precision

    eligible = [p for p in points if p.hits and reaches(p)]
    return max(eligible, key=lambda p: (p.recall, p.precision)) if eligible else None


RADII = tuple(round(0.05 * i, 2) for i in range(2, 21))  # 0.10 … 1.00
FINE_RADII = tuple(round(0.025 * i, 3) for i in range(2, 41))  # 0.05 … 1.00
CUTS = tuple(round(0.02 * i, 2) for i in range(0, 50))  # 0.00 … 0.98


def verifier_probabilities(verifier: Verifier, lookups: Lookups) -> np.ndarray:
    return verifier.probabilities(lookups.features(verifier.features))
