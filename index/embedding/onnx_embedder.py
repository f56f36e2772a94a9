"""The fast embedding backends: all-MiniLM-L6-v2 on ONNX Runtime. ``onnx`` (the default) is
the model the project ships (``models/embedder``: float32 compute, int8-rounded weights, no
export step); ``onnx-fp32`` and ``onnx-int8`` are ``make models``' exports of the packaged
weights (exact, and dynamically quantised).

Tokenises with ``tokenizers`` as sentence-transformers does (pad to the longest text of the
batch, truncate at 256 tokens), runs the exported transformer, then mean-pools over the
attention mask and L2-normalises in numpy. Imports neither torch nor transformers.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.embedding.protocol import EMBEDDING_DIM, MAX_TOKENS, seen_by_offsets
from index.model_paths import resolved
from index.onnx_runtime import batch_tokenizer, cpu_session

CHUNK = 32  # texts per ONNX run
# the files `python -m training.onnx_export` writes into the cache folder
FP32_NAME = "model.onnx"
INT8_NAME = "model-int8.onnx"
TOKENIZER_NAME = "tokenizer.json"
EMBEDDER_META = "embedder.json"  # the shipped model's provenance and files' digests
SHIPPED = Path("models/embedder")  # the packed model (index/packed_model.py) and its tokenizer


def model_files(onnx_dir: Path, backend: str) -> tuple[Path, Path]:
    """``(model, tokenizer)`` of a backend: the shipped folder, or a file of the export."""
    if backend == "onnx":
        folder = resolved(SHIPPED)
        return folder, folder / TOKENIZER_NAME
    name = INT8_NAME if backend == "onnx-int8" else FP32_NAME
    return onnx_dir / name, onnx_dir / TOKENIZER_NAME


class OnnxEmbedder:
    def __init__(self, model_file: Path, tokenizer_file: Path, threads: int | None = None) -> None:
        for path in (model_file, tokenizer_file):
            if not path.exists():
                raise FileNotFoundError(
                    f"{path} is missing: export the ONNX models with "
                    f"`python -m training.onnx_export --out {path.parent}` (make models)"
                )
        self._session = cpu_session(model_file, threads)
        self._tokenizer = batch_tokenizer(tokenizer_file, MAX_TOKENS)
        self._input_names = {node.name for node in self._session.get_inputs()}
        self.dim = EMBEDDING_DIM
        self.batch_invariant = "int8" not in model_file.name  # dynamic int8: not
        self.parallel_runs = True  # ONNX Runtime's Run is thread-safe

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode in chunks of texts of similar length: one ONNX run over thousands of texts
        would hold batch × tokens² attention scores at once (tens of GB)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), CHUNK):
            chunk = order[start : start + CHUNK]
            vectors[chunk] = self._encode_chunk([texts[i] for i in chunk])
        return vectors

    def seen_chars(self, text: str) -> int:
        if len(text) <= MAX_TOKENS - 2:  # a word piece covers at least one character
            return len(text)
        encoding = self._tokenizer.encode(text)
        return seen_by_offsets(text, encoding.offsets, bool(encoding.overflowing))

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.ascontiguousarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)
