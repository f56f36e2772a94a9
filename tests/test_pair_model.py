"""The pair model: shipped in models/pair (``make pair-model`` rebuilds it), served from ONNX,
the build its metadata describes, picked up by a running service without a restart, and
fine-tuned on a user's own pairs."""

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from devtools.replica_process import ROOT
from index.decision.numbers import differing_numbers
from index.decision.pair_model import META_NAME, TOKENIZER_NAME, PairModel
from index.decision.spans import refused as refused_by_rule
from index.packed_model import GRAPH_NAME, WEIGHTS_NAME
from tests.helpers import CacheService, wait_until
from training.fixture import write as write_fixture
from training.pair_artifact import FILES, fingerprint, sha256

BUILT = ROOT / "models" / "pair"
SAME = ("How do I reset my password?", "How can I reset my password?")
SWAPPED = ("Why did Germany invade Poland?", "Why did Poland invade Germany?")


@pytest.fixture(scope="module")
def model() -> PairModel:
    if not (BUILT / META_NAME).exists():
        pytest.fail("models/pair is missing: the repository ships it")
    return PairModel.load(BUILT)


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick build from the project's own fixture data (training/fixture.py): the
    training code, run end to end on any machine."""
    data = write_fixture(tmp_path_factory.mktemp("fixture"))
    out = tmp_path_factory.mktemp("quick") / "pair"
    done = subprocess.run(
        [sys.executable, "-m", "training.pair_model_train", "--quick", "--data", str(data),
         "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_shipped_model_is_the_build_its_metadata_describes(model: PairModel) -> None:
    meta = json.loads((BUILT / META_NAME).read_text())
    assert meta["version"] and meta["code_commit"] and meta["data_sha256"]
    assert meta["seed"] == 7 and not meta["quick"] and meta["beats_static"]
    assert {"precision", "recall"} <= set(meta["tune"]) and meta["dev"]["samples"] >= 3
    for name in FILES:
        assert sha256(BUILT / name) == meta["files_sha256"][name], name
    # it decides as it did when it was built, pair by pair
    recorded = meta["fingerprint"]
    for now, then in zip(fingerprint(BUILT), recorded, strict=True):
        assert now["served"] == then["served"], now
        assert now["distance"] == pytest.approx(then["distance"], abs=2e-4)
        if then["probability"] is None:
            assert now["probability"] is None
        else:
            assert now["probability"] == pytest.approx(then["probability"], abs=2e-3)
    assert any(row["served"] for row in recorded) and not all(row["served"] for row in recorded)


def test_artifact_carries_its_operating_point_and_provenance(model: PairModel) -> None:
    meta = json.loads((BUILT / META_NAME).read_text())
    assert 0 < model.radius <= 4 and 0 < model.cut < 1
    assert meta["trained_on"] and meta["built_at"] > 0 and meta["onnx"] == "packed-int8"
    assert 0 <= meta["tune"]["precision"] <= 1 and meta["tune"]["recall"] >= 0.5
    # the build compared itself with the static threshold at the same recall on tune
    static = meta["static_at_same_recall"]
    assert static["recall"] >= meta["tune"]["recall"] - 1e-9
    assert meta["beats_static"] == (meta["tune"]["precision"] > static["precision"])
    # serving reads only the packed network and the tokenizer: no torch weights are needed
    assert all((BUILT / name).exists() for name in (GRAPH_NAME, WEIGHTS_NAME, TOKENIZER_NAME))


def test_probabilities_rank_a_paraphrase_above_a_word_swap(model: PairModel) -> None:
    same, swapped = model.probabilities([SAME, SWAPPED])
    assert 0 <= swapped < same <= 1
    # served: the model's probability and the distance combined by the stack fitted on tune
    assert model.stack is not None
    judged = model.serve_below + 0.05  # past the cascade's bound: the model is run
    # one pair at a time, as served (an int8 build's scale depends on what it is batched with)
    alone = model.probabilities([SAME])[0]
    combined = model.served_probabilities(np.array([alone]), np.array([judged]))[0]
    assert model.probability(*SAME, distance=judged) == pytest.approx(float(combined), abs=1e-6)
    # nearer is never judged less likely right, all else equal
    near, far = model.served_probabilities(np.array([same, same]), np.array([0.05, 0.6]))
    assert near >= far


def test_the_cascade_serves_near_candidates_without_the_model(
    model: PairModel,
) -> None:
    meta = json.loads((BUILT / META_NAME).read_text())
    assert 0 <= model.serve_below == meta["serve_below"] < model.radius
    assert 0 <= meta["tune_judged_share_of_hits"] <= 1
    cascaded = PairModel.load(BUILT)
    cascaded.serve_below = 0.2  # a bound of this test's choosing
    assert cascaded.probability(*SAME, distance=0.1) is None  # settled on the distance
    assert isinstance(cascaded.probability(*SAME, distance=0.3), float)  # judged


def test_differing_numbers_are_refused_whatever_the_model_says() -> None:
    assert differing_numbers("Is 200 mg of ibuprofen safe?", "Is 800 mg of ibuprofen safe?")
    assert not differing_numbers("Is 200 mg safe?", "Is a dose of 200 mg safe?")
    assert refused_by_rule("Is 200 mg of ibuprofen safe?", "Is 800 mg of ibuprofen safe?")


def test_a_running_service_picks_up_a_newly_built_model(
    start_service: Callable[..., CacheService], tmp_path: Path, model: PairModel
) -> None:
    folder = tmp_path / "pair"
    service = start_service(pair_model="on", pair_model_dir=folder, decision_reload_s=0.1)
    assert service.http.get("/readyz").json()["decision"]["stage"] == "static"
    service.query(SAME[0])
    assert service.query(SAME[1], cache="only").json()["confidence"] is None

    staging = tmp_path / ".pair.building"  # as the trainer does: whole, then renamed
    shutil.copytree(BUILT, staging, ignore=shutil.ignore_patterns("torch"))
    meta = json.loads((staging / META_NAME).read_text())
    meta["serve_below"] = 0.0  # no cascade: the near paraphrase below is judged
    (staging / META_NAME).write_text(json.dumps(meta))
    staging.rename(folder)
    wait_until(
        lambda: service.http.get("/readyz").json()["decision"]["stage"] == "pair-model",
        30,
        interval_s=0.1,
        message="the pair model picked up",
    )
    decision = service.http.get("/v1/stats").json()["decision"]
    assert decision["stage"] == "pair-model" and decision["cut"] == model.cut
    hit = service.query(SAME[1], cache="only").json()
    assert hit["status"] == "HIT" and hit["confidence"] is not None


def test_a_broken_build_keeps_the_stage_in_force(
    start_service: Callable[..., CacheService], tmp_path: Path
) -> None:
    folder = tmp_path / "pair"
    folder.mkdir()
    (folder / META_NAME).write_text(json.dumps({"built_at": 1.0, "radius": 1, "cut": 0.5}))
    service = start_service(pair_model="on", pair_model_dir=folder, decision_reload_s=0.1)
    assert service.http.get("/readyz").json()["decision"]["stage"] == "static"
    assert service.query("What is the capital of France?").status_code == 200


def test_a_quick_build_is_packed_stamped_and_never_put_in_force_by_auto(
    quick_build: Path,
) -> None:
    meta = json.loads((quick_build / META_NAME).read_text())
    assert meta["quick"] and meta["onnx"] == "packed-int8" and meta["fingerprint"]
    assert set(meta["data_sha256"]) == {"qqp_open.jsonl", "stsb_train_dev.jsonl"}
    assert (quick_build / "torch").exists()  # kept for a later fine-tune
    assert PairModel.load(quick_build).probabilities([SAME]).shape == (1,)


def test_fine_tune_on_own_pairs_writes_a_model_with_its_own_operating_point(
    tmp_path: Path, quick_build: Path
) -> None:
    base = tmp_path / "base"
    shutil.copytree(quick_build, base)
    pairs = tmp_path / "mine.jsonl"
    topics = ["invoice", "refund", "password", "shipping", "warranty", "delivery", "account",
              "discount", "subscription", "order"]  # fmt: skip
    rows = []
    for i, topic in enumerate(topics * 12):
        thing = f"the {topic} number {i // len(topics)}"
        rows.append({"q1": f"How do I change {thing}?", "q2": f"How can I change {thing}?",
                     "duplicate": True})  # fmt: skip
        rows.append({"q1": f"How do I cancel {thing}?", "q2": f"Who pays for {thing}?",
                     "duplicate": False})  # fmt: skip
    pairs.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "tuned"
    cli = Path(sys.executable).parent / "dyna-cache"  # the project's CLI, as a user runs it
    done = subprocess.run(
        [str(cli), "fine-tune", str(pairs), "--base", str(base), "--out", str(out),
         "--epochs", "0.3"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / META_NAME).read_text())
    assert meta["trained_on"] == str(pairs) and meta["tune"]["pairs"] > 0
    assert PairModel.load(out).probabilities([SAME]).shape == (1,)


@pytest.mark.parametrize(("beats_static", "quick", "setting", "stage"), [
    (False, False, "auto", "static"), (True, False, "auto", "pair-model"),
    (False, False, "on", "pair-model"), (True, True, "auto", "static"),
    (True, True, "on", "pair-model"),
])  # fmt: skip
def test_auto_puts_in_force_only_a_model_that_beat_the_static_threshold(
    start_service: Callable[..., CacheService],
    tmp_path: Path,
    model: PairModel,
    beats_static: bool,
    quick: bool,
    setting: str,
    stage: str,
) -> None:
    """``auto`` puts in force only a full build that beat the static threshold on tune (a
    quick build, made for the tests, never); ``on`` whatever is built."""
    folder = tmp_path / "pair"
    shutil.copytree(BUILT, folder, ignore=shutil.ignore_patterns("torch"))
    meta = json.loads((folder / META_NAME).read_text())
    (folder / META_NAME).write_text(
        json.dumps({**meta, "beats_static": beats_static, "quick": quick})
    )
    service = start_service(pair_model=setting, pair_model_dir=folder)
    decision = service.http.get("/readyz").json()["decision"]
    assert decision["stage"] == stage
    if stage == "static":
        reason = "a quick build" if quick else "does not beat the static threshold"
        assert reason in decision["pair_model"]


@pytest.mark.parametrize(("query", "cached", "refused"), [
    ("Why did Germany invade Poland?", "Why did Poland invade Germany?", True),
    ("How do I move money from savings to checking?",
     "How do I move money from checking to savings?", True),
    ("Is 200 mg of ibuprofen safe?", "Is 800 mg of ibuprofen safe?", True),
    ("What is the difference between cats and dogs?",
     "What is the difference between dogs and cats?", False),
    ("Which is better, tea or coffee?", "Which is better, coffee or tea?", False),
    ("How do I sort a list in Python?", "In Python, how do I sort a list?", False),
    ("How do I reset my password?", "How can I reset my password?", False),
    # a word negated by a prefix, the rest the same (articles aside)
    ("Is it possible to learn Java in a week?", "Is it impossible to learn Java in a week?", True),
    ("How do I pack my bag for a flight?", "How do I unpack my bag for a flight?", True),
    ("What is a regular verb in French?", "What is an irregular verb in French?", True),
    ("Why do people agree with him?", "Why do people disagree with him?", True),
    ("Is driving barefoot illegal?", "Is it illegal to drive barefoot?", False),
    ("How do I install Python?", "How can I install Python?", False),
    # numbers written out in words of scale; "one" is as often a pronoun
    ("Can I earn a hundred dollars a day?", "Can I earn a thousand dollars a day?", True),
    ("What would you do with a billion euros?", "What would you do with a million euros?", True),
    ("How can one learn Python fast?", "How can I learn Python fast?", False),
    ("What can I buy for a million dollars?", "What can I buy with a million dollars?", False),
])  # fmt: skip
def test_rules_refuse_exchanged_words_numbers_and_negations_not_rephrasings(
    query: str, cached: str, refused: bool
) -> None:
    assert refused_by_rule(query, cached) is refused


def test_the_served_pair_model_judges_past_its_cascade_only(model: PairModel) -> None:
    """The model judges the band between ``serve_below`` and its radius; nearer, a
    candidate is settled on its distance (the rules above it: ``tests/test_decision.py``)."""
    judged = model.serve_below + 0.01
    assert (model.probability(*SAME, distance=judged) or 0) > 0
    assert model.serve_below == 0 or model.probability(*SAME, distance=0.0) is None


def test_a_newer_build_that_does_not_qualify_takes_the_older_out_of_force(
    start_service: Callable[..., CacheService], tmp_path: Path, model: PairModel
) -> None:
    folder = tmp_path / "pair"
    shutil.copytree(BUILT, folder, ignore=shutil.ignore_patterns("torch"))
    meta = json.loads((folder / META_NAME).read_text())
    (folder / META_NAME).write_text(
        json.dumps({**meta, "beats_static": True, "built_at": 1.0, "quick": False})
    )
    service = start_service(pair_model="auto", pair_model_dir=folder, decision_reload_s=0.1)
    assert service.http.get("/readyz").json()["decision"]["stage"] == "pair-model"
    staged = folder / ".meta.tmp"
    staged.write_text(json.dumps({**meta, "beats_static": False, "built_at": 2.0, "quick": False}))
    staged.replace(folder / META_NAME)
    wait_until(
        lambda: service.http.get("/readyz").json()["decision"]["stage"] == "static",
        30,
        interval_s=0.1,
        message="the newer, not qualifying build seen",
    )
