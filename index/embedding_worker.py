"""Runs the blocking embedder off the event loop, in one worker thread.

One thread, because the model already uses the machine's cores for one batch; more threads
would only contend. Callers await :meth:`EmbeddingWorker.embed`.
"""

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from index.embedder import Embedder


class EmbeddingWorker:
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.dim = embedder.dim
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self.texts_embedded = 0

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        self.texts_embedded += len(texts)
        vectors: np.ndarray = await loop.run_in_executor(
            self._executor, self.embedder.encode, list(texts)
        )
        return vectors

    async def embed_one(self, text: str) -> np.ndarray:
        vectors = await self.embed([text])
        row: np.ndarray = vectors[0]
        return row

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
