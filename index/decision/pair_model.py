"""The pair model: a MiniLM cross-encoder that reads the query and a cached question as one
input and gives the probability that the cached answer is right for the query; it sees word
order, so it tells "Why did Germany invade Poland?" from "Why did Poland invade Germany?".

Trained by ``training/pair_model_train.py``, served on ONNX Runtime; its probability is
stacked with the candidate's distance. A built model is a folder: the network (packed or
``model.onnx``), ``tokenizer.json`` and ``pair_model.json`` (stack weights, ``radius``,
``cut``, ``serve_below``, provenance). The rules (``spans.py``) stand above it; below
``serve_below`` a candidate is served on its distance (the cascade).
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.onnx_runtime import batch_tokenizer, cpu_session
from index.packed_model import is_packed

MODEL_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"
META_NAME = "pair_model.json"
MAX_TOKENS = 64  # both questions together; longer pairs are cut, the longer one first


class PairModel:
    def __init__(
        self,
        model_file: Path,
        tokenizer_file: Path,
        radius: float,
        cut: float,
        meta: dict[str, Any] | None = None,
        threads: int | None = None,
        stack: Sequence[float] | None = None,
    ) -> None:
        self._session = cpu_session(model_file, threads)
        self._tokenizer = batch_tokenizer(tokenizer_file, MAX_TOKENS)
        self.radius = radius
        self.cut = cut
        self.meta = meta or {}
        # the cascade: nearer than this, a candidate the rules allow is served without the
        # model (chosen on tune where the model would serve it anyway; 0: always judged)
        self.serve_below = float(self.meta.get("serve_below") or 0.0)
        # (weight of the model's logit, weight of the distance, bias); None: the model alone
        self.stack = tuple(stack) if stack is not None else None

    @classmethod
    def load(cls, folder: Path, threads: int | None = None) -> "PairModel":
        meta = json.loads((folder / META_NAME).read_text())
        return cls(
            folder if is_packed(folder) else folder / MODEL_NAME,
            folder / TOKENIZER_NAME,
            float(meta["radius"]),
            float(meta["cut"]),
            meta,
            threads,
            meta.get("stack"),
        )

    @staticmethod
    def built_at(folder: Path) -> float | None:
        """When the model in ``folder`` was built (None: there is none), from its metadata."""
        try:
            return float(json.loads((folder / META_NAME).read_text())["built_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def probabilities(self, pairs: Sequence[tuple[str, str]], chunk: int = 64) -> np.ndarray:
        """P(the cached answer is right) for each (query, cached question) pair."""
        scores = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            encodings = self._tokenizer.encode_batch([(q, c) for q, c in part])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (logits,) = self._session.run(["logit"], feeds)
            scores[start : start + len(part)] = 1 / (1 + np.exp(-logits))
        return scores

    def served_probabilities(
        self, model_probabilities: np.ndarray, distances: np.ndarray
    ) -> np.ndarray:
        """The served probability from the model's and the candidates' distances."""
        return combined(model_probabilities, distances, self.stack)

    def probability(
        self, query: str, cached: str, distance: float, cascade: bool = True
    ) -> float | None:
        """What a candidate at ``distance`` is judged (the rules of ``spans.py`` stand above
        it): None when it is nearer than ``serve_below`` and ``cascade`` allows (served on
        its distance, the model not run); else the combined probability."""
        if cascade and distance < self.serve_below:
            return None
        raw = self.probabilities([(query, cached)])
        return float(self.served_probabilities(raw, np.array([distance]))[0])


def combined(
    model_probabilities: np.ndarray, distances: np.ndarray, stack: Sequence[float] | None
) -> np.ndarray:
    """The model's probabilities combined with the distances by ``stack`` (None: as they are)."""
    if stack is None:
        return model_probabilities
    w_logit, w_distance, bias = stack
    clipped = np.clip(model_probabilities, 1e-6, 1 - 1e-6)
    logit = np.log(clipped / (1 - clipped))
    z = w_logit * logit + w_distance * distances + bias
    result: np.ndarray = 1 / (1 + np.exp(-z))
    return result
