"""What the cache asks of an embedder (the Protocol every backend meets), and the model's
constants: all-MiniLM-L6-v2 gives 384-dimensional vectors and reads at most 256 word
pieces. Every backend returns L2-normalised float32 rows, so squared L2 is ``2 - 2·cos``."""

from collections.abc import Sequence
from typing import Protocol

import numpy as np

EMBEDDING_DIM = 384


class Embedder(Protocol):
    dim: int
    # False when a text's vector depends on what it is batched with (dynamic int8
    # quantisation picks one activation scale per batch): such a backend is never micro-batched
    batch_invariant: bool
    # True when two threads may run it at once (then a replica embeds in parallel lanes)
    parallel_runs: bool

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 rows, one per text (blocking; call off the event loop)."""
        ...

    def seen_chars(self, text: str) -> int:
        """How many leading characters of ``text`` the model reads (it stops at
        ``MAX_TOKENS`` word pieces); ``len(text)`` when it reads it all."""
        ...


MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length, [CLS] and [SEP] included


def seen_by_offsets(text: str, offsets: Sequence[tuple[int, int]], truncated: bool) -> int:
    """The end of the last word piece the model reads, from a truncated encoding's
    character offsets (special tokens have (0, 0))."""
    if not truncated:
        return len(text)
    return max((end for _, end in offsets), default=len(text))
