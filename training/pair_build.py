"""Building a pair model's folder: train it (``train``), write its shipped form with the
operating point chosen on tune (``publish``), write that again from its torch weights
(``reship``), or choose its operating point again (``refit``).

The artifact (a folder, written whole then renamed into place, so a running service never
reads half of one): ``model.onnx`` (fp32, or int8 when it serves as well on tune: precision
and recall within ``TOLERANCE``), ``tokenizer.json``, ``pair_model.json`` (operating point,
the cascade's ``serve_below``, figures on tune, provenance) and ``torch/`` (the weights,
for a later fine-tune). Needs the ``[train]`` extra (torch); serving reads only the ONNX
file.
"""

import json
import logging
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from index.decision.pair_model import META_NAME, TOKENIZER_NAME, PairModel, combined
from index.embedding.embedder import load_embedder
from training.pack_model import pack
from training.pair_artifact import data_digests, stamp
from training.pair_calibration import (
    PROTOCOL,
    as_good,
    cascade_bound,
    cascade_meta,
    fit_stack,
    judged_radius,
    model_probabilities,
    operating_point,
    served_scores,
    static_at_recall,
    tune_lookups,
)
from training.pair_data import Pair
from training.pair_fit import fit
from training.pair_rows import MINED_ROWS, MINING_RADIUS, TUNE_SEED, Row, examples, mined_rows
from training.pair_scorer import Scorer

log = logging.getLogger(__name__)

# --quick: a small build for the test suite (about a minute), which needs a pair model that
# exists and behaves, not the best one; marked in its meta, never put in force by "auto"
QUICK_TUNE_PAIRS = 1_200


def train(
    train_pairs: list[Pair],
    tune_pairs: list[Pair],
    out: Path,
    seed: int,
    epochs: float,
    lr: float,
    base: Path,
    traps: bool,
    min_recall: float,
    provenance: dict[str, Any],
    quick: bool = False,
    mine: bool = False,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    rng = random.Random(seed)
    mined: list[Row] = []
    if mine:
        mined = mined_rows(train_pairs, load_embedder("onnx", None).encode,
                           MINING_RADIUS, MINED_ROWS)  # fmt: skip
        log.info("pair model: %d mined rows (%d right)", len(mined), sum(y for *_, y in mined))
    rows = examples(train_pairs, rng, traps, quick, mined)
    if quick:  # the tune lookups cost as much as training: a sample of them
        tune_pairs = random.Random(TUNE_SEED).sample(
            tune_pairs, min(QUICK_TUNE_PAIRS, len(tune_pairs))
        )
    log.info("pair model: %d training rows (%d pairs), seed %d, %.2f epochs",
             len(rows), len(train_pairs), seed, epochs)  # fmt: skip
    scorer = Scorer(base, seed)
    fit(scorer, rows, epochs, lr, seed)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    scorer.save(staging / "torch")
    meta = publish(staging, scorer, tune_pairs, min_recall, {
        "seed": seed,
        "epochs": epochs,
        "training_rows": len(rows),
        "mined_rows": len(mined),
        "train_seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
        **provenance,
    })  # fmt: skip
    replace_folder(staging, out)
    log.info("pair model: wrote %s in %.0f s: radius %.3f, cut %.2f, tune precision %.3f "
             "recall %.3f", out, time.perf_counter() - started, meta["radius"], meta["cut"],
             meta["tune"]["precision"], meta["tune"]["recall"])  # fmt: skip
    return meta


def publish(
    staging: Path, scorer: "Scorer", tune_pairs: list[Pair], min_recall: float,
    facts: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Write the shipped form of a trained network into ``staging``: packed (int8 weights,
    float32 compute: ``training/pack_model.py``), with its stack, operating point and
    cascade chosen on the tune pairs with the packed network (the form that serves), its
    figures beside the exact float32 network's, its provenance and a fingerprint of its
    decisions. Returns the metadata written."""
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        scorer.export(fp32)
        pack(fp32, staging)
        shutil.copyfile(staging / "torch" / TOKENIZER_NAME, staging / TOKENIZER_NAME)
        lookups = tune_lookups(tune_pairs, load_embedder("onnx", None).encode)
        raw = {
            name: model_probabilities(PairModel(path, staging / TOKENIZER_NAME, 0, 0.5), lookups)
            for name, path in (("fp32", fp32), ("packed", staging))
        }
    radius = judged_radius(lookups)
    fitted = {name: fit_stack(lookups, p, radius) for name, p in raw.items()}
    scores = {
        name: served_scores(lookups, combined(p, lookups.distance, fitted[name]))
        for name, p in raw.items()
    }
    points = {name: operating_point(lookups, scores[name], radius, min_recall) for name in raw}
    inside = lookups.distance < radius
    decided = {name: scores[name][inside] >= points[name]["cut"] for name in raw}
    agreement = float(np.mean(decided["fp32"] == decided["packed"]))
    if not as_good(points["packed"], points["fp32"]):
        log.warning("pair model: the packed network serves worse on tune than float32 "
                    "(%s vs %s)", points["packed"], points["fp32"])  # fmt: skip
    stack, point = fitted["packed"], points["packed"]
    serve_below = cascade_bound(lookups, scores["packed"], point)
    model_alone = operating_point(lookups, served_scores(lookups, raw["packed"]), radius,
                                  min_recall)  # fmt: skip
    static = static_at_recall(lookups, point["recall"])
    meta = {
        "radius": round(point["radius"], 4),
        "cut": point["cut"],
        "stack": [round(w, 6) for w in stack] if stack else None,
        **cascade_meta(lookups, scores["packed"], point, serve_below),
        "protocol": PROTOCOL,
        "tune": {
            "pairs": len(lookups.queries),
            "precision": round(point["precision"], 4),
            "recall": round(point["recall"], 4),
        },
        # the static threshold at the same recall on the same tune lookups: the service
        # puts the model in force by default only when it beats that (DYNACACHE_PAIR_MODEL)
        "static_at_same_recall": {k: round(v, 4) for k, v in static.items()},
        # the cross-encoder's probability alone (no stack), for comparison
        "model_alone": {k: round(v, 4) for k, v in model_alone.items()},
        "beats_static": point["precision"] > static["precision"],
        "onnx": "packed-int8",
        "fp32_tune": {k: round(v, 4) for k, v in points["fp32"].items()},
        "packed_decision_agreement": round(agreement, 4),
        "built_at": time.time(),
        **facts,
    }
    (staging / META_NAME).write_text(json.dumps(meta, indent=2))
    stamp(staging)  # version, commit, digests, fingerprint
    return json.loads((staging / META_NAME).read_text())  # type: ignore[no-any-return]


CARRIED = ("seed", "epochs", "training_rows", "mined_rows", "train_seconds", "quick",
           "trained_on", "base", "data_sha256")  # fmt: skip


def reship(folder: Path, tune_pairs: list[Pair], min_recall: float, data: Path) -> dict[str, Any]:
    """Write a build's shipped form again from its ``torch/`` weights (``publish``), keeping
    what its metadata says of its training (the data's digest taken now if it has none)."""
    old = json.loads((folder / META_NAME).read_text())
    staging = folder.parent / f".{folder.name}.shipping-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(folder / "torch", staging / "torch")
    scorer = Scorer(staging / "torch", int(old.get("seed", 7)))
    facts = {"data_sha256": data_digests(data)} | {k: old[k] for k in CARRIED if k in old}
    meta = publish(staging, scorer, tune_pairs, min_recall, facts)
    replace_folder(staging, folder)
    return meta


def refit(folder: Path, tune_pairs: list[Pair], min_recall: float) -> dict[str, Any]:
    """Choose a built model's stack and operating point again on ``tune_pairs`` (its network
    unchanged), and rewrite its metadata in place."""
    meta: dict[str, Any] = json.loads((folder / META_NAME).read_text())
    embedder = load_embedder("onnx", None)
    lookups = tune_lookups(tune_pairs, embedder.encode)
    raw = model_probabilities(PairModel.load(folder), lookups)
    radius = judged_radius(lookups)
    stack = fit_stack(lookups, raw, radius)
    point = operating_point(lookups, served_scores(lookups, combined(raw, lookups.distance, stack)),
                            radius, min_recall)  # fmt: skip
    scores = served_scores(lookups, combined(raw, lookups.distance, stack))
    serve_below = cascade_bound(lookups, scores, point)
    static = static_at_recall(lookups, point["recall"])
    model_alone = operating_point(lookups, served_scores(lookups, raw), radius, min_recall)
    meta |= {
        "radius": round(point["radius"], 4),
        "cut": point["cut"],
        "stack": [round(w, 6) for w in stack] if stack else None,
        **cascade_meta(lookups, scores, point, serve_below),
        "protocol": PROTOCOL,
        "tune": {"pairs": len(lookups.queries), "precision": round(point["precision"], 4),
                 "recall": round(point["recall"], 4)},
        "static_at_same_recall": {k: round(v, 4) for k, v in static.items()},
        "model_alone": {k: round(v, 4) for k, v in model_alone.items()},
        "beats_static": point["precision"] > static["precision"],
        "built_at": time.time(),
    }  # fmt: skip
    staged = folder / f".{META_NAME}.tmp"
    staged.write_text(json.dumps(meta, indent=2))
    staged.replace(folder / META_NAME)
    return meta


def built(folder: Path, quick_will_do: bool) -> bool:
    """A build is there: any, when a quick one will do; else a full one."""
    meta = folder / META_NAME
    if not meta.exists():
        return False
    return quick_will_do or not json.loads(meta.read_text()).get("quick", False)


def replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is, whole: a reader sees the old folder or the new one."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
