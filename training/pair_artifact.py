"""What a shipped pair model carries about itself: a version, the training code's commit,
digests of its files, and a fingerprint of its decisions on a fixed set of pairs the project
wrote (``FINGERPRINT_PAIRS``), so a test can show that the artifact in the repository, the
wheel or the image is the build its metadata describes and decides as it did."""

import datetime
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from index.decision.pair_model import META_NAME, TOKENIZER_NAME, PairModel
from index.decision.spans import refused
from index.embedding.embedder import load_embedder
from index.packed_model import GRAPH_NAME, WEIGHTS_NAME

FILES = (GRAPH_NAME, WEIGHTS_NAME, TOKENIZER_NAME)
# (stored, asked): paraphrases, look-alikes that mean something else, and unrelated pairs
FINGERPRINT_PAIRS = (
    ("How do I reset my password?", "How can I reset my password?"),
    ("Why did Germany invade Poland?", "Why did Poland invade Germany?"),
    ("What is the capital of France?", "Tell me the capital of France"),
    ("Is it safe to take 200 mg of ibuprofen?", "Is it safe to take 800 mg of ibuprofen?"),
    ("How do I cancel my subscription?", "How can I cancel my subscription?"),
    ("How do I cancel my subscription?", "How do I keep my subscription?"),
    ("What is the best way to learn Python?", "What is the worst way to learn Python?"),
    ("How can I lose weight fast?", "What is the fastest way to lose weight?"),
    ("Why is the sky blue?", "What makes the sky look blue?"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
    ("What are good books about history?", "Which history books should I read?"),
    ("How do I bake bread at home?", "What is the population of Canada?"),
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_digests(data: Path) -> dict[str, str]:
    """sha256 of each data file a build reads: which data a shipped model came from."""
    return {path.name: sha256(path) for path in sorted(data.glob("*.jsonl"))}


def code_commit() -> str:
    """The checkout's commit, ``-dirty`` when it has uncommitted changes ("unknown" outside
    a git checkout)."""
    try:
        run = {"capture_output": True, "text": True, "check": True, "timeout": 10}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()  # type: ignore[call-overload]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "training", "index"], **run
        ).stdout.strip()  # type: ignore[call-overload]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else str(commit)


def fingerprint(folder: Path) -> list[dict[str, Any]]:
    """Each fixed pair's distance, the served probability and the served verdict."""
    model = PairModel.load(folder)
    embed = load_embedder("onnx", None).encode
    rows = []
    for stored, asked in FINGERPRINT_PAIRS:
        u, v = embed([asked, stored])
        distance = float(np.sum((u - v) ** 2))
        # the served decision: the rules over what differs first (0: refused), then the model
        ruled = refused(asked, stored)
        probability = 0.0 if ruled else model.probability(asked, stored, distance)
        served = distance < model.radius and (probability is None or probability >= model.cut)
        rows.append({
            "stored": stored, "asked": asked, "distance": round(distance, 5),
            "probability": None if probability is None else round(probability, 5),
            "served": bool(served),
        })  # fmt: skip
    return rows


def stamp(folder: Path) -> None:
    """Add the files' digests, a version, the code's commit and the fingerprint to the
    folder's metadata."""
    meta_file = folder / META_NAME
    meta = json.loads(meta_file.read_text())
    digests = {name: sha256(folder / name) for name in FILES}
    built = datetime.datetime.fromtimestamp(meta["built_at"], datetime.UTC)
    meta |= {
        "version": f"{built:%Y.%m.%d}-{digests[WEIGHTS_NAME][:8]}",
        "code_commit": code_commit(),
        "files_sha256": digests,
        "fingerprint": fingerprint(folder),
    }
    meta_file.write_text(json.dumps(meta, indent=2))
