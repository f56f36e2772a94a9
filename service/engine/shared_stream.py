"""One upstream stream read by every request that shares it (coalesced streamed misses).

A task reads the upstream and publishes each chunk; each reader gets the chunks published so
far, then each new one as it comes. The upstream is read to the end while anyone reads; when
the last reader leaves before the end, the reading task is cancelled (the upstream stream is
closed, nothing is stored), as a lone client's disconnect did before streams were shared.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from service.llm.client import UpstreamFailed

Chunk = dict[str, Any]


class SharedStream:
    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.finished = False
        self.error: Exception | None = None
        self.readers = 0
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # -- the writer (the task reading the upstream) ---------------------------------------

    def publish(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self._wake()

    def finish(self) -> None:
        self.finished = True
        self._wake()

    def fail(self, error: Exception) -> None:
        self.error = error
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- readers ---------------------------------------------------------------------

    async def first(self) -> None:
        """Wait for the first chunk; an upstream that fails before it raises here (so the
        request can answer an HTTP error rather than start a stream)."""
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.finished:
                raise UpstreamFailed("upstream stream was empty")
            await self._changed.wait()

    async def follow(self) -> AsyncIterator[Chunk]:
        """Every chunk, from the first; raises the upstream's error where it happened."""
        self.readers += 1
        position = 0
        try:
            while True:
                changed = self._changed
                while position < len(self.chunks):
                    yield self.chunks[position]
                    position += 1
                if self.error is not None:
                    raise self.error
                if self.finished:
                    return
                await changed.wait()
        finally:
            self.readers -= 1
            done = self.finished or self.error is not None
            if self.readers == 0 and not done and self.task is not None:
                self.task.cancel()  # nobody reads on: close the upstream, store nothing
                # and a request joining it now (before it is gone) must not wait for ever
                self.fail(UpstreamFailed("the stream was abandoned by its readers"))
