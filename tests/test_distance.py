import pytest

from index.decision.distance import is_hit, resolve_threshold, similarity


def test_similarity_is_cosine_for_squared_l2_on_unit_vectors() -> None:
    assert similarity(0.0) == 1.0
    assert similarity(2.0) == 0.0
    assert similarity(4.0) == -1.0
    assert similarity(0.35) == pytest.approx(0.825)


def test_hit_is_strictly_below_threshold() -> None:
    assert is_hit(0.3499, 0.35)
    assert not is_hit(0.35, 0.35)
    assert not is_hit(0.0, 0.0)  # a zero threshold admits nothing


def test_zero_threshold_is_a_value_not_unset() -> None:
    assert resolve_threshold(0.0, 0.35) == 0.0
    assert resolve_threshold(None, 0.35) == 0.35
