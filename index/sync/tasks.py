"""Stopping the sync's background tasks for sure."""

import asyncio
import contextlib

STOP_RETRY_S = 0.2  # a task is cancelled again after this, until it has ended


async def cancel_until_done(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for each to end. A cancel that lands while the feed is being
    opened can be lost on the way (a cache closed right after it started waited 30 s, its
    sync task still waiting on its queue): cancelled again until the task has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        while not task.done():
            await asyncio.wait({task}, timeout=STOP_RETRY_S)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
