"""Runs the blocking embedder off the event loop, batching concurrent requests.

Single texts wait in a queue; one worker task takes everything queued (up to ``max_batch``),
optionally waits ``max_wait_ms`` for more, and encodes the batch in one worker thread.
While a batch is being encoded, the next one fills up, so batches form by themselves under
load and a lone request waits for nothing. Lists of texts (bulk warm-up) are encoded as
they come. One thread, because the model already uses the cores for one batch. A backend
whose vectors depend on their batch (``batch_invariant`` False) is never micro-batched.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from index.embedding.embedder import Embedder


class EmbeddingWorker:
    def __init__(self, embedder: Embedder, max_batch: int = 64, max_wait_ms: float = 0.0) -> None:
        self.embedder = embedder
        self.dim = embedder.dim
        self.max_batch = max_batch if embedder.batch_invariant else 1
        self.max_wait_s = max_wait_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._batcher: asyncio.Task[None] | None = None
        self.texts_embedded = 0
        self.batches = 0

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of several texts, encoded together (not merged with other requests)."""
        self.texts_embedded += len(texts)
        return await self._encode(list(texts))

    async def embed_one(self, text: str) -> np.ndarray:
        """The vector of one text, encoded in a batch with whatever else is waiting."""
        self.texts_embedded += 1
        if self.max_batch <= 1:
            vectors = await self._encode([text])
            row: np.ndarray = vectors[0]
            return row
        if self._batcher is None:
            self._batcher = asyncio.create_task(self._run_batches(), name="embedding-batcher")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((text, future))
        return await future

    async def _encode(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        self.batches += 1
        vectors: np.ndarray = await loop.run_in_executor(
            self._executor, self.embedder.encode, texts
        )
        return vectors

    async def _run_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            waiting = [(text, future) for text, future in batch if not future.cancelled()]
            if not waiting:
                continue
            try:
                vectors = await self._encode([text for text, _ in waiting])
            except Exception as error:  # every waiter hears of it; the batcher carries on
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), vector in zip(waiting, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)

    async def close(self) -> None:
        if self._batcher is not None:
            self._batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._batcher
        self._executor.shutdown(wait=False, cancel_futures=True)
