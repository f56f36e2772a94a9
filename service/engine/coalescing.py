"""Request coalescing: concurrent identical misses (same namespace, scope and normalised
prompt) make one LLM call.

Within a replica the first miss leads and later ones await it. Across replicas the leader
holds a short Redis lock, renewed while its call runs; a follower polls for the stored entry
until it appears, the lock goes (it then tries to lead) or the deadline passes. Why the lock
is short and renewed: docs/design.md, "Why it is built so". Streamed followers on the
leader's replica read its upstream stream as it arrives (``SharedStream``).
"""

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from index.store import keys
from index.store.errors import RedisError
from index.store.records import StoredEntry
from index.store.redis_store import RedisStore
from service.engine.shared_stream import SharedStream

T = TypeVar("T")


@dataclass(frozen=True)
class Led(Generic[T]):
    """This request made the LLM call; ``result`` is what the producer returned."""

    result: T


@dataclass(frozen=True)
class Followed:
    """Another request made the call; ``entry`` is what it stored."""

    entry: StoredEntry


@dataclass(frozen=True)
class Sharing:
    """A streamed miss reads ``stream``, which it started (``leads``) or joined."""

    stream: SharedStream
    leads: bool


@dataclass(frozen=True)
class _Turn:
    """A request's turn to call the LLM: the lock, and its token while it holds it."""

    lock: str
    token: str | None


# starts the upstream stream; the callback is awaited when it ends, however it ends
StartStream = Callable[[Callable[[], Awaitable[None]]], SharedStream]
# whether a request may be served a stored entry (its max-age, the entry's feedback radius)
Servable = Callable[[StoredEntry], bool]


def _any_entry(_: StoredEntry) -> bool:
    return True


class MissCoalescer:
    def __init__(
        self,
        store: RedisStore,
        lock_ttl_s: float,
        poll_interval_s: float = 0.02,
        lock_life_s: float = 3.0,
    ) -> None:
        """``lock_ttl_s``: how long a follower waits at most; ``lock_life_s``: the lock's
        time to live between its leader's renewals."""
        self.store = store
        self.lock_ttl_ms = max(1, int(lock_ttl_s * 1000))
        self.lock_life_ms = max(1, int(min(lock_life_s, lock_ttl_s) * 1000))
        self.poll_interval_s = poll_interval_s
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        self._streams: dict[str, asyncio.Future[SharedStream | Followed]] = {}
        self.waiting = 0  # requests now waiting on another's call (here or on a replica)

    def stream_readers(self) -> int:
        """Requests now reading a shared upstream stream on this replica."""
        readers = 0
        for future in self._streams.values():
            if future.done() and not future.exception():
                shared = future.result()
                readers += shared.readers if isinstance(shared, SharedStream) else 0
        return readers

    async def share_stream(
        self,
        ns: str,
        scope: str,
        normalised: str,
        start: StartStream,
        servable: Servable = _any_entry,
    ) -> Sharing | Followed:
        """Join the streamed miss in flight for this prompt on this replica, or lead one
        (holding the cross-replica lock until its stream ends), or, when another replica
        leads, wait for its stored entry."""
        exact = keys.exact_key(ns, scope, normalised)
        running = self._streams.get(exact)
        if running is not None:
            with self._waiting():
                joined = await asyncio.shield(running)
            return Sharing(joined, leads=False) if isinstance(joined, SharedStream) else joined
        started: asyncio.Future[SharedStream | Followed] = (
            asyncio.get_running_loop().create_future()
        )
        self._streams[exact] = started
        try:
            outcome = await self._lead_stream(ns, scope, normalised, exact, start, servable)
        except BaseException as error:
            self._streams.pop(exact, None)
            started.set_exception(error)
            started.exception()  # retrieved: nobody may be waiting
            raise
        started.set_result(outcome.stream if isinstance(outcome, Sharing) else outcome)
        if not isinstance(outcome, Sharing):
            self._streams.pop(exact, None)
        return outcome

    async def _lead_stream(
        self,
        ns: str,
        scope: str,
        normalised: str,
        exact: str,
        start: StartStream,
        servable: Servable,
    ) -> Sharing | Followed:
        turn = await self._take_turn(ns, scope, normalised, exact, servable)
        if isinstance(turn, Followed):
            return turn
        heartbeat = asyncio.create_task(self._renew(turn), name="lock-heartbeat")
        return Sharing(start(self._ending(exact, turn, heartbeat)), leads=True)

    def _ending(
        self, exact: str, turn: _Turn, heartbeat: asyncio.Task[None]
    ) -> Callable[[], Awaitable[None]]:
        """What a led stream does when it ends: no longer joinable, its lock released."""

        async def ended() -> None:
            self._streams.pop(exact, None)
            heartbeat.cancel()
            await self._release(turn)

        return ended

    async def _renew(self, turn: _Turn) -> None:
        """Keep the lock alive while its holder runs (until cancelled, or the lock is lost)."""
        if turn.token is None:
            return
        while True:
            await asyncio.sleep(self.lock_life_ms / 3000)
            try:
                held = await self.store.locks.renew(turn.lock, turn.token, self.lock_life_ms)
            except RedisError:
                continue  # Redis away: the lock may lapse; followers then lead themselves
            if not held:
                return

    async def _release(self, turn: _Turn) -> None:
        if turn.token is None:
            return
        with contextlib.suppress(RedisError):  # else it expires by itself
            await self.store.locks.release(turn.lock, turn.token)

    async def run(
        self,
        ns: str,
        scope: str,
        normalised: str,
        produce: Callable[[], Awaitable[T]],
        servable: Servable = _any_entry,
    ) -> Led[T] | Followed:
        """Make the call, or share the one in flight for this prompt (here, or on another
        replica through the lock); a stored entry is followed only when ``servable`` says
        this request may be served it (not one its lookup refused: too old, narrowed)."""
        exact = keys.exact_key(ns, scope, normalised)
        leader = self._in_flight.get(exact)
        if leader is not None:
            with self._waiting():
                await asyncio.shield(leader)  # the leader's error, if any, is ours too
            entry = await self._stored(ns, scope, normalised, servable)
            if entry is not None:
                return Followed(entry)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[exact] = done
        try:
            outcome = await self._lead_or_wait(ns, scope, normalised, exact, produce, servable)
            done.set_result(None)
            return outcome
        except BaseException as error:
            done.set_exception(error)
            done.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._in_flight[exact]

    async def _lead_or_wait(
        self,
        ns: str,
        scope: str,
        normalised: str,
        exact: str,
        produce: Callable[[], Awaitable[T]],
        servable: Servable,
    ) -> Led[T] | Followed:
        turn = await self._take_turn(ns, scope, normalised, exact, servable)
        if isinstance(turn, Followed):
            return turn
        heartbeat = asyncio.create_task(self._renew(turn), name="lock-heartbeat")
        try:
            return Led(await produce())
        finally:
            heartbeat.cancel()
            await self._release(turn)

    async def _take_turn(
        self, ns: str, scope: str, normalised: str, exact: str, servable: Servable
    ) -> _Turn | Followed:
        """This request's turn to make the call (holding the cross-replica lock, or not when
        Redis gives none or another holder outlived its deadline), or the entry another
        request stored meanwhile."""
        lock = keys.lock_key(exact)
        token = secrets.token_hex(8)
        deadline = asyncio.get_running_loop().time() + self.lock_ttl_ms / 1000
        while True:
            try:
                acquired = await self.store.locks.take(lock, token, self.lock_life_ms)
            except RedisError:  # no lock to be had: make the call rather than wait
                return _Turn(lock, None)
            if acquired:
                # the entry may have been stored (and the lock released) between this
                # replica's lookup and now: its own index hears of it only via pub/sub
                entry = None
                with contextlib.suppress(RedisError):
                    entry = await self._stored(ns, scope, normalised, servable)
                if entry is None:
                    return _Turn(lock, token)
                await self._release(_Turn(lock, token))
                return Followed(entry)
            with self._waiting():
                waited = await self._wait_for_other(ns, scope, normalised, lock, deadline, servable)
            if isinstance(waited, Followed):
                return waited
            if waited == "timed out":
                return _Turn(lock, None)
            # "released": the other leader gave up: try to lead

    async def _wait_for_other(
        self,
        ns: str,
        scope: str,
        normalised: str,
        lock: str,
        deadline: float,
        servable: Servable,
    ) -> Followed | Literal["released", "timed out"]:
        """Wait for the replica holding ``lock`` to store the entry."""
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self.poll_interval_s)
            entry = await self._stored(ns, scope, normalised, servable)
            if entry is not None:
                return Followed(entry)
            if not await self.store.locks.held(lock):
                return "released"
        return "timed out"

    async def _stored(
        self, ns: str, scope: str, normalised: str, servable: Servable
    ) -> StoredEntry | None:
        """The prompt's stored entry, when this request may be served it."""
        entry = await self.store.lookup_exact(ns, scope, normalised)
        return entry if entry is not None and servable(entry) else None

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1
