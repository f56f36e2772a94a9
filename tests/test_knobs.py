"""Each decision stage has its own knobs, and a setting says which stage it tunes: a
request naming another stage's knob is refused (never a silent replacement of the judge's
radius), a tenant's knobs apply when their stage decides, and ``DYNACACHE_THRESHOLD`` tunes
the static stage only."""

from collections.abc import Callable

import pytest

from tests.helpers import CacheService, store_entries

STORED = "How do I reset my router to factory settings?"
ASKED = "How can I factory reset my router?"


def stored(service: CacheService) -> CacheService:
    store_entries(service.http, [{"prompt": STORED, "response": "Hold reset for 10 s."}])
    return service


@pytest.mark.parametrize(
    ("stage", "knob", "other"),
    [("pair-model", {"threshold": 0.5}, "static"),
     ("pair-model", {"verifier_cut": 0.2}, "verifier"),
     ("static", {"pair_model_cut": 0.0}, "pair-model")],
)  # fmt: skip
def test_a_request_naming_another_stages_knob_is_refused(
    start_service: Callable[..., CacheService], stage: str, knob: dict[str, float], other: str
) -> None:
    service = start_service(pair_model="on" if stage == "pair-model" else "off")
    assert service.http.get("/readyz").json()["decision"]["stage"] == stage
    refused = service.query(ASKED, cache="only", **knob)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "knob_not_in_force" and other in error["message"]


def test_the_pair_models_own_knobs_move_its_decision(
    start_service: Callable[..., CacheService],
) -> None:
    service = stored(start_service(pair_model="on"))
    # judged: past the cascade's bound, inside the radius
    judged = "What should I do to restore my router's original configuration?"
    loose = service.query(judged, cache="only", pair_model_cut=0.0).json()
    decision = service.http.get("/readyz").json()["decision"]
    assert decision["serve_below"] < loose["distance"] < decision["radius"]
    strict = service.query(judged, cache="only", pair_model_cut=1.0).json()
    assert loose["status"] == "HIT" and strict["status"] == "MISS"
    assert strict["refused_by"] == "pair-model"
    narrow = service.query(ASKED, cache="only", pair_model_radius=0.001).json()
    assert narrow["status"] == "MISS" and narrow["refused_by"] == "threshold"


def test_the_service_threshold_tunes_the_static_stage_only(
    start_service: Callable[..., CacheService],
) -> None:
    """A tiny DYNACACHE_THRESHOLD turns the static stage's paraphrase HIT into a MISS and
    leaves the pair model's decision as it was."""
    static = stored(start_service(pair_model="off", threshold=0.001))
    judged = stored(start_service(pair_model="on", threshold=0.001))
    assert static.query(ASKED, cache="only").json()["status"] == "MISS"
    assert judged.query(ASKED, cache="only").json()["status"] == "HIT"
