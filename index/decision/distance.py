"""Distance and threshold semantics, in one place.

Vectors are unit-normalised, and FAISS (like RediSearch's L2 metric) reports the SQUARED
Euclidean distance, so ``d = 2 - 2·cos`` and ``similarity = 1 - d/2 = cos``. A lookup is a
HIT when ``d < threshold``. A threshold of 0 is a real value (nothing is close enough), not
"unset": callers resolve ``None`` with :func:`resolve_threshold`, never with ``or``.
"""

DEFAULT_THRESHOLD = 0.35
MAX_DISTANCE = 4.0  # the largest squared L2 distance between two unit vectors


def similarity(distance: float) -> float:
    """Cosine similarity of two unit vectors whose squared L2 distance is ``distance``."""
    return 1.0 - distance / 2.0


def is_hit(distance: float, threshold: float) -> bool:
    """The one HIT rule: strictly closer than the threshold."""
    return distance < threshold


def resolve_threshold(requested: float | None, default: float) -> float:
    """The threshold a lookup uses: the request's own when it gave one, else the default."""
    return default if requested is None else requested
