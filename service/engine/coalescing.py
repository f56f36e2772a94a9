"""Request coalescing: concurrent identical misses (same namespace, scope and normalised
prompt) make one LLM call.

Within a replica, the first miss leads and later ones await it. Across replicas, the leader
holds a short Redis lock (``dc:lock:{ns}:<sha>``, SET NX PX, released only by its holder);
a replica that finds the lock taken polls for the stored entry until it appears, the lock
goes (the leader failed: it then tries to lead itself) or the deadline passes.
"""

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from redis.exceptions import RedisError

from index.store import keys
from index.store.records import StoredEntry
from index.store.redis_store import RedisStore

T = TypeVar("T")


@dataclass(frozen=True)
class Led(Generic[T]):
    """This request made the LLM call; ``result`` is what the producer returned."""

    result: T


@dataclass(frozen=True)
class Followed:
    """Another request made the call; ``entry`` is what it stored."""

    entry: StoredEntry


class MissCoalescer:
    def __init__(self, store: RedisStore, lock_ttl_s: float, poll_interval_s: float = 0.02) -> None:
        self.store = store
        self.lock_ttl_ms = max(1, int(lock_ttl_s * 1000))
        self.poll_interval_s = poll_interval_s
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        self.waiting = 0  # requests now waiting on another's call (here or on a replica)

    async def run(
        self, ns: str, scope: str, normalised: str, produce: Callable[[], Awaitable[T]]
    ) -> Led[T] | Followed:
        exact = keys.exact_key(ns, scope, normalised)
        leader = self._in_flight.get(exact)
        if leader is not None:
            with self._waiting():
                await asyncio.shield(leader)  # the leader's error, if any, is ours too
            entry = await self.store.lookup_exact(ns, scope, normalised)
            if entry is not None:
                return Followed(entry)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[exact] = done
        try:
            outcome = await self._lead_or_wait(ns, scope, normalised, exact, produce)
            done.set_result(None)
            return outcome
        except BaseException as error:
            done.set_exception(error)
            done.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._in_flight[exact]

    async def _lead_or_wait(
        self, ns: str, scope: str, normalised: str, exact: str,
        produce: Callable[[], Awaitable[T]],
    ) -> Led[T] | Followed:  # fmt: skip
        lock = keys.lock_key(exact)
        token = secrets.token_hex(8)
        deadline = asyncio.get_running_loop().time() + self.lock_ttl_ms / 1000
        while True:
            try:
                acquired = await self.store.client.set(lock, token, nx=True, px=self.lock_ttl_ms)
            except RedisError:
                acquired = True  # no lock to be had: make the call rather than wait
            if acquired:
                try:
                    # the entry may have been stored (and the lock released) between this
                    # replica's lookup and now: its own index hears of it only via pub/sub
                    entry = None
                    with contextlib.suppress(RedisError):
                        entry = await self.store.lookup_exact(ns, scope, normalised)
                    if entry is not None:
                        return Followed(entry)
                    return Led(await produce())
                finally:
                    with contextlib.suppress(RedisError):  # else it expires by itself
                        await self.store.scripts.release_lock(keys=[lock], args=[token])
            with self._waiting():
                waited = await self._wait_for_other(ns, scope, normalised, lock, deadline)
            if isinstance(waited, Followed):
                return waited
            if waited == "timed out":
                return Led(await produce())
            # "released": the other leader gave up: try to lead

    async def _wait_for_other(
        self, ns: str, scope: str, normalised: str, lock: str, deadline: float
    ) -> Followed | Literal["released", "timed out"]:
        """Wait for the replica holding ``lock`` to store the entry."""
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self.poll_interval_s)
            entry = await self.store.lookup_exact(ns, scope, normalised)
            if entry is not None:
                return Followed(entry)
            if not await self.store.client.exists(lock):
                return "released"
        return "timed out"

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1
