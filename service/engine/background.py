"""Work that runs after a request was answered (audits, shadow mode's comparisons): never
awaited by the request, waited for at a test's or a bench's end, cancelled at a stop."""

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self, name: str) -> None:
        self.name = name
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=self.name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait for the work under way, at most ``timeout_s``."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
