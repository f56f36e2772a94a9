"""Runs the blocking embedder off the event loop, in parallel lanes (docs/benchmarks.md,
"Embedding lanes").

A lane is a worker thread running the model; a replica has one lane per core. A text that
finds every lane idle runs on the ``embedder`` (all cores: lowest latency), one that finds a
lane busy on the ``lane_embedder`` (one core: most texts per second). Micro-batching
(``max_batch`` > 1) is optional and off by default; a backend whose vectors depend on their
batch is never batched, one that cannot run twice at once (torch) has one lane.
"""

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from index.embedding.protocol import Embedder


class EmbeddingWorker:
    def __init__(
        self,
        embedder: Embedder,
        lanes: int = 1,
        max_batch: int = 1,
        max_wait_ms: float = 0.0,
        lane_embedder: Embedder | None = None,
    ) -> None:
        self.embedder = embedder
        self.lane_embedder = lane_embedder or embedder
        self.dim = embedder.dim
        self.lanes = max(1, lanes) if embedder.parallel_runs else 1
        self.max_batch = max_batch if embedder.batch_invariant else 1
        self.max_wait_s = max_wait_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="embed")
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._free_lanes = asyncio.Semaphore(self.lanes)
        self._batcher: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._running = 0  # encodes in the lanes now
        self._last_busy = 0.0  # when the lanes last finished an encode (monotonic)
        self.texts_embedded = 0
        self.batches = 0

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of several texts, encoded together (not merged with other requests)."""
        self.texts_embedded += len(texts)
        return await self._encode(list(texts))

    async def embed_one(self, text: str) -> np.ndarray:
        """The vector of one text: embedded in the next free lane, or with micro-batching
        in a batch with whatever else is waiting."""
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
        model = self.embedder if self._running == 0 else self.lane_embedder
        self._running += 1
        try:
            vectors: np.ndarray = await loop.run_in_executor(self._executor, model.encode, texts)
        finally:
            self._running -= 1
            self._last_busy = time.monotonic()
        return vectors

    async def quiet(self, quiet_s: float, max_wait_s: float) -> None:
        """Wait until no text has been embedded for ``quiet_s`` (requests are not being
        served), at most ``max_wait_s``: background work (an audit's answer check) yields
        the cores to requests, and under steady load runs anyway once it has waited."""
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            idle_for = time.monotonic() - self._last_busy
            if self._running == 0 and idle_for >= quiet_s:
                return
            await asyncio.sleep(max(quiet_s - idle_for, 0.005))

    async def _run_batches(self) -> None:
        while True:
            await self._free_lanes.acquire()  # the batch fills while every lane is busy
            try:
                batch = await self._next_batch()
            except BaseException:
                self._free_lanes.release()
                raise
            task = asyncio.create_task(self._encode_batch(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _next_batch(self) -> list[tuple[str, asyncio.Future[np.ndarray]]]:
        loop = asyncio.get_running_loop()
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
        return batch

    async def _encode_batch(self, batch: list[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        try:
            waiting = [(text, future) for text, future in batch if not future.cancelled()]
            if not waiting:
                return
            try:
                vectors = await self._encode([text for text, _ in waiting])
            except Exception as error:  # every waiter hears of it; the batcher carries on
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                return
            for (_, future), vector in zip(waiting, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
        finally:
            self._free_lanes.release()

    async def close(self) -> None:
        tasks = [*self._in_flight, *([self._batcher] if self._batcher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)
