"""A pub/sub connection to one Redis node, and its reader: what the node delivers (messages,
or ``FeedFailed`` when the connection is lost or the node takes a subscription back) goes
on a queue shared with the other nodes' connections. ``index/sync/event_feed.py`` decides
what to follow on which node."""

import asyncio
import contextlib
from typing import Any

from redis.exceptions import TimeoutError as RedisTimeoutError

from index.store.connection import connect

_CONFIRM_TIMEOUT_S = 5.0
_KINDS = {"subscribe", "psubscribe", "ssubscribe"}
_TAKEN_BACK = {"unsubscribe", "punsubscribe", "sunsubscribe"}
_MESSAGES = {"message", "pmessage", "smessage"}


class FeedFailed(Exception):
    """A node's connection was lost or it dropped a subscription: open a new feed."""


class NodeSubscription:
    """One node's pub/sub connection and its reader."""

    def __init__(self, url: str, name: str, queue: "asyncio.Queue[Any]") -> None:
        self.url = url
        self.client = connect(url, None, name)
        self.pubsub = self.client.pubsub()
        self.queue = queue
        self.waiting: dict[tuple[str, bytes], asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.closing = False
        self.leaving: set[bytes] = set()  # channels given up on purpose (not a failure)

    async def subscribe(self, kind: str, names: list[str]) -> None:
        """Subscribe (``subscribe``, ``psubscribe`` or ``ssubscribe``) and wait until the node
        has confirmed each name."""
        if not names:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for name in names:
            future: asyncio.Future[None] = loop.create_future()
            self.waiting[(kind, name.encode())] = future
            futures.append(future)
        if kind == "ssubscribe":  # one SSUBSCRIBE's channels must share a slot
            for name in names:
                await self.pubsub.ssubscribe(name)
        else:
            await getattr(self.pubsub, kind)(*names)
        if self.reader is None:
            self.reader = asyncio.create_task(self._read(), name=f"events:{self.url}")
        try:
            async with asyncio.timeout(_CONFIRM_TIMEOUT_S):
                await asyncio.gather(*futures)
        except TimeoutError as error:
            raise RedisTimeoutError(f"{kind} not confirmed by {self.url}") from error

    async def unsubscribe_shard(self, names: list[str]) -> None:
        """Give up sharded channels (their confirmations are not failures)."""
        for name in names:
            self.leaving.add(name.encode())
            await self.pubsub.sunsubscribe(name)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                kind = message["type"]
                if kind in _MESSAGES:
                    self.queue.put_nowait(message)
                elif kind in _KINDS:
                    future = self.waiting.pop((kind, message["channel"]), None)
                    if future is not None and not future.done():
                        future.set_result(None)
                elif kind in _TAKEN_BACK and message["channel"] in self.leaving:
                    self.leaving.discard(message["channel"])
                elif kind in _TAKEN_BACK and not self.closing:
                    raise FeedFailed(f"{self.url} dropped {message['channel']!r}")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # surfaced to the applier, which opens a new feed
            failure = error if isinstance(error, FeedFailed) else FeedFailed(repr(error))
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(failure)
            self.queue.put_nowait(failure)

    async def close(self) -> None:
        self.closing = True
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.client.aclose()
