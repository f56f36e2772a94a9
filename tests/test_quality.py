"""Hit quality: the verifier, wrong-hit feedback across replicas, and calibration."""

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis

from devtools.redis_cluster import EmbeddedCluster
from index.decision.distance import DEFAULT_THRESHOLD
from index.decision.verifier import Verifier
from index.embedding.embedder import load_embedder
from service.embedded_redis import EmbeddedRedis
from service.settings import Settings
from tests.helpers import CacheService, wait_until
from training.calibrate import calibrate
from training.fixture import write as write_fixture
from training.pair_data import Pair, read_pairs

VERIFIER = Settings().verifier_path  # the shipped verifier (models/verifier)

# (stored, asked): the static threshold serves these, wrongly
TRAPS = [
    ("Why did Germany invade Poland?", "Why did Poland invade Germany?"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
    ("Is it safe to take 200 mg of ibuprofen?", "Is it safe to take 800 mg of ibuprofen?"),
    ("What is the best way to learn Python?", "What is the worst way to learn Python?"),
]
# inside the verifier's radius though not the static threshold's
WIDER_TRAPS = [("How do I cancel my subscription?", "How do I keep my subscription?")]
PARAPHRASES = [
    ("How do I cancel my subscription?", "How can I cancel my subscription?"),
    ("How do I reset my password?", "How can I reset my password?"),
    ("Why is the sky blue?", "What makes the sky look blue?"),
    ("How can I lose weight fast?", "What is the fastest way to lose weight?"),
]


@pytest.fixture(scope="module")
def embed() -> Callable[[list[str]], np.ndarray]:
    return load_embedder("onnx", None, None, str(Settings().onnx_dir)).encode


def distance(embed: Callable[[list[str]], np.ndarray], a: str, b: str) -> float:
    u, v = embed([a, b])
    return float(np.sum((u - v) ** 2))


def test_verifier_rejects_traps_the_static_threshold_accepts(embed: Callable) -> None:
    verifier = Verifier.load(VERIFIER)
    for stored, asked in TRAPS:
        d = distance(embed, stored, asked)
        assert d < DEFAULT_THRESHOLD, (stored, asked)  # the static threshold serves it
        assert d < verifier.radius  # so the verifier judges it
        u, v = embed([asked, stored])
        p = verifier.probability(asked, stored, u, v, d, None)
        assert p < verifier.cut, (asked, p)
    for stored, asked in WIDER_TRAPS:  # refused by the radius, or else by the verifier
        d = distance(embed, stored, asked)
        u, v = embed([asked, stored])
        assert d >= verifier.radius or verifier.probability(asked, stored, u, v, d, None) < (
            verifier.cut
        )
    for stored, asked in PARAPHRASES:
        d = distance(embed, stored, asked)
        u, v = embed([asked, stored])
        assert verifier.probability(asked, stored, u, v, d, None) >= verifier.cut, asked


def test_service_with_verifier_misses_traps_and_serves_paraphrases(
    start_service: Callable[..., CacheService],
) -> None:
    verified = start_service(verifier="on")
    static = start_service(verifier="off")
    stored = sorted({s for s, _ in TRAPS + PARAPHRASES})
    response = verified.http.post(
        "/v1/entries", json={"entries": [{"prompt": s, "response": s} for s in stored]}
    )
    assert response.status_code == 201
    # stored through one replica: the other holds them once their events arrive
    wait_until(lambda: len(static.runtime.index) == len(stored), message="entries everywhere")
    for _, asked in TRAPS:
        # the static threshold serves a trap unless a rule over what differs refuses it
        # (the rules hold in every stage)
        plain = static.query(asked, cache="only").json()
        assert plain["status"] == "HIT" or plain["refused_by"].startswith("rule:"), asked
        answer = verified.query(asked, cache="only").json()
        assert answer["status"] == "MISS", asked
        assert answer["confidence"] is not None or answer["refused_by"].startswith("rule:")
    for _, asked in PARAPHRASES:
        answer = verified.query(asked, cache="only").json()
        assert answer["status"] == "HIT", asked
        assert 0 <= answer["confidence"] <= 1


def test_wrong_hit_report_narrows_the_entry_on_every_replica(
    start_service: Callable[..., CacheService], redis_client: redis.Redis
) -> None:
    # a lenient threshold, under which "pause" is served the "cancel" answer
    a = start_service(verifier="off", threshold=0.45)
    b = start_service(verifier="off", threshold=0.45)
    a.query("How do I cancel my subscription?")
    wrong = "How do I pause my subscription?"
    hit = a.query(wrong, cache="only").json()
    assert hit["status"] == "HIT"
    report = a.http.post(
        "/v1/feedback", json={"entry_id": hit["entry_id"], "prompt": wrong, "correct": False}
    )
    assert report.status_code == 200, report.text
    assert report.json()["feedback_radius"] < report.json()["distance"]
    assert b.query(wrong, cache="only").json()["status"] == "MISS"
    paraphrase = b.query("How can I cancel my subscription?", cache="only").json()
    assert paraphrase["status"] == "HIT"
    assert paraphrase["entry_id"] == hit["entry_id"]
    kept = b.http.post(
        "/v1/feedback",
        json={"entry_id": hit["entry_id"], "prompt": "How can I cancel my subscription?",
              "correct": True},
    )  # fmt: skip
    assert kept.status_code == 200
    assert kept.json()["feedback_radius"] == report.json()["feedback_radius"]  # not widened
    reports = [json.loads(r) for r in redis_client.lrange(
        f"dc:fb:{{default}}:{hit['entry_id']}", 0, -1)]  # fmt: skip
    assert [r["correct"] for r in reports] == [False, True]
    entry = redis_client.hgetall(f"dc:e:{{default}}:{hit['entry_id']}")
    assert (entry[b"fb_wrong"], entry[b"fb_right"]) == (b"1", b"1")


def test_a_wrong_report_on_the_stored_prompt_itself_stops_exact_hits(
    service: CacheService,
) -> None:
    entry_id = service.query("Who wrote Hamlet?").json()["entry_id"]
    assert service.query("Who wrote Hamlet?").json()["status"] == "HIT"
    service.http.post(
        "/v1/feedback", json={"entry_id": entry_id, "prompt": "who wrote hamlet?", "correct": False}
    ).raise_for_status()
    assert service.query("Who wrote Hamlet?", cache="only").json()["status"] == "MISS"


def test_feedback_is_tenant_scoped_and_checked(
    start_service: Callable[..., CacheService],
) -> None:
    service = start_service(admin_token="admin-secret")
    admin = {"Authorization": "Bearer admin-secret"}
    keys = {}
    for ns in ("acme", "globex"):
        service.http.post("/v1/admin/tenants", json={"namespace": ns}, headers=admin)
        issued = service.http.post(f"/v1/admin/tenants/{ns}/keys", json={}, headers=admin)
        keys[ns] = {"Authorization": f"Bearer {issued.json()['key']}"}
    acme_entry = service.http.post(
        "/v1/query", json={"prompt": "What is the capital of France?"}, headers=keys["acme"]
    ).json()["entry_id"]
    report = {"entry_id": acme_entry, "prompt": "Capital of France?", "correct": False}
    other = service.http.post("/v1/feedback", json=report, headers=keys["globex"])
    assert other.status_code == 404
    for bad in ({**report, "prompt": "  "}, {**report, "correct": "maybe"},
                {"entry_id": acme_entry, "prompt": "x"}):  # fmt: skip
        assert service.http.post("/v1/feedback", json=bad, headers=keys["acme"]).status_code == 422
    unknown = {**report, "entry_id": "0123456789abcdef"}
    assert service.http.post("/v1/feedback", json=unknown, headers=keys["acme"]).status_code == 404
    own = service.http.post("/v1/feedback", json=report, headers=keys["acme"])
    assert own.status_code == 200


@pytest.fixture(scope="module")
def fixture_pairs(tmp_path_factory: pytest.TempPathFactory) -> list[Pair]:
    """The project's own labelled pairs (training/fixture.py), for the calibration tool's
    tests (whose figures no README reports): the same on every machine."""
    folder = write_fixture(tmp_path_factory.mktemp("fixture"))
    return list(read_pairs(folder / "qqp_open.jsonl"))


def test_calibration_reaches_its_target_on_held_out_pairs(
    embed: Callable, fixture_pairs: list[Pair]
) -> None:
    pairs = fixture_pairs
    verifier = Verifier.load(VERIFIER) if VERIFIER.exists() else None
    target = 0.6  # the fixture's look-alikes keep the static threshold under ~0.67
    results = calibrate(pairs, embed, target, verifier, holdout=0.4, sample=1000, seed=3)
    assert results, f"a point reaching {target} exists on the pairs"
    for result in results:
        assert result.chosen.precision >= target
        # held out, the precision is an estimate from its own hits: it may fall under the
        # target by sampling alone, not by more than two of its standard errors
        held = result.held_out
        error = math.sqrt(target * (1 - target) / max(1, held.hits))
        assert held.precision >= target - 2 * error, result
        assert held.recall > 0.1


def test_calibration_cli_writes_the_tenant_settings(
    tmp_path: Path,
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis | EmbeddedCluster,
    fixture_pairs: list[Pair],
) -> None:
    pairs = fixture_pairs
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"q1": p.q1, "q2": p.q2, "duplicate": p.duplicate})
                            + "\n" for p in pairs))  # fmt: skip
    redis_client.hset("dc:tenant:{acme}", mapping={"settings": "{}", "created": 1})
    url = redis_server.url
    done = subprocess.run(
        [sys.executable, "-m", "training.calibrate", "--pairs", str(path),
         "--target-precision", "0.6", "--tenant", "acme", "--redis-url", url],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "held out precision" in done.stdout
    settings = json.loads(redis_client.hget("dc:tenant:{acme}", "settings"))
    assert 0 < settings["threshold"] <= 1
    # each stage's point goes to that stage's own knobs, never onto the pair model's
    assert settings.get("pair_model_radius") is None and settings.get("pair_model_cut") is None
    assert ("verifier_cut" in settings) == ("verifier_radius" in settings)
    assert "pair model keeps its build's operating point" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "training.calibrate", "--pairs", str(path),
         "--target-precision", "1.5"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
