"""The wrong-rate bound's rules (index/decision/wrong_rate.py, bound.py): evidence groups by
the judge's probability, priors that the evidence updates, the served mix held under the
bound, and the answer check's error corrected for."""

import numpy as np
import pytest

from index.decision.bound import within_bound
from index.decision.wrong_rate import (
    CheckError,
    estimate,
    evidence_group,
    open_groups,
    posterior,
    prior_of,
)
from index.store.records import StoredEntry


def test_a_judged_candidate_is_grouped_by_the_judges_probability() -> None:
    assert evidence_group(0.2, False, 0.62) == "p>=0.5"
    assert evidence_group(0.2, False, 0.91) == "p>=0.9"
    assert evidence_group(0.02, False, None) == "<0.05"  # the cascade's: its distance
    assert prior_of("p>=0.9") == pytest.approx(0.1) and prior_of("<0.05") == 0.05


def test_with_no_evidence_the_priors_decide() -> None:
    """The bound serves before any audit: a confident judge's band opens under a loose
    bound, not under a tight one (it used to serve nothing until every band had evidence)."""
    assert "p>=0.9" in open_groups({}, 0.2, ask="p>=0.9")
    assert "p>=0.9" not in open_groups({}, 0.05, ask="p>=0.9")
    assert "p>=0.5" not in open_groups({}, 0.2, ask="p>=0.5")


def test_evidence_outweighs_the_prior() -> None:
    right = {"evidence:p>=0.5": 200, "evidence_wrong:p>=0.5": 4, "offered:p>=0.5": 200}
    assert posterior(right, "p>=0.5")[0] < 0.1
    assert "p>=0.5" in open_groups(right, 0.1)
    wrong = {"evidence:p>=0.9": 100, "evidence_wrong:p>=0.9": 40, "offered:p>=0.9": 100}
    assert "p>=0.9" not in open_groups(wrong, 0.2)


def test_what_is_held_is_the_served_mix() -> None:
    """A group over the bound on its own is served when the mix with the groups less wrong
    than it holds the bound; the worst group is left out when it would break it."""
    counts = {
        "evidence:<0.05": 100, "offered:<0.05": 600,  # 0 wrong of 100
        "evidence:p>=0.7": 100, "evidence_wrong:p>=0.7": 15, "offered:p>=0.7": 200,
        "evidence:p>=0.5": 60, "evidence_wrong:p>=0.5": 25, "offered:p>=0.5": 300,
    }  # fmt: skip
    assert posterior(counts, "p>=0.7")[0] > 0.12  # over the bound on its own
    opened = open_groups(counts, 0.12)
    assert opened == {"<0.05", "p>=0.7"}
    assert open_groups(counts, 0.02) == {"<0.05"}


def test_the_check_error_is_corrected_for() -> None:
    check = CheckError(false_same=0.2, false_different=0.05)
    assert check.true_rate(check.observed_rate(0.3)) == pytest.approx(0.3)
    assert check.true_rate(0.01) == 0.0  # under the false-different floor
    # 15 of 100 observed: (0.15 - 0.05) / 0.75 truly wrong, the interval widened alike
    corrected, raw = estimate(15, 100, check), estimate(15, 100)
    assert corrected["estimate"] == pytest.approx(0.1333, abs=1e-4)
    assert corrected["observed"] == 0.15
    assert corrected["high"] - corrected["low"] > raw["high"] - raw["low"]
    # evidence read 8 % wrong by a check that calls many wrong answers right: over 10 %
    counts = {"evidence:p>=0.7": 400, "evidence_wrong:p>=0.7": 32, "offered:p>=0.7": 400}
    assert "p>=0.7" in open_groups(counts, 0.1)
    assert "p>=0.7" not in open_groups(counts, 0.1, CheckError(false_same=0.3))


def test_past_the_radius_only_a_vouched_candidate_may_serve() -> None:
    entry = StoredEntry(
        entry_id="e", prompt="q", response="a", created=0.0, llm_ms=0.0, cost=0.0, ttl=0,
        hits=0, seq=1, vector=np.zeros(384, dtype=np.float32), verified_radius=0.5,
    )  # fmt: skip
    counts = {"evidence:vouched": 300, "offered:vouched": 300}
    assert within_bound(counts, entry, 0.45, 0.35, 0.05)  # vouched, past the radius
    assert not within_bound(counts, entry, 0.55, 0.35, 0.05)  # past its verified radius
    assert not within_bound(None, entry, 0.55, 0.35, 0.9)
