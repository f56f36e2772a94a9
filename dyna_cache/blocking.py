"""``SyncSemanticCache``: ``SemanticCache`` for code that does not run an event loop.

Each method is generated from the async one (``_blocking``): it runs the coroutine on the
cache's private event loop, in one thread the cache starts and joins on ``close()``, and
waits for it. There is no second implementation. Safe to call from several threads (their
calls interleave on the one loop, as concurrent requests do on a replica).
"""

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from dyna_cache.cache import NotStarted, SemanticCache
from service.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    method: Callable[Concatenate[SemanticCache, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate["SyncSemanticCache", P], R]:
    """The blocking twin of one of ``SemanticCache``'s coroutine methods."""

    def run(self: "SyncSemanticCache", /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self.cache, *args, **kwargs))

    functools.update_wrapper(run, method)  # its name, docstring and signature
    return run


class SyncSemanticCache:
    """The semantic cache, in process, blocking. See ``SemanticCache`` for the options.

    with SyncSemanticCache(redis_url="redis://localhost:6379") as cache:
        found = cache.check("How do I reset my password?")
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        namespace: str = "default",
        start_degraded: bool = False,
        **overrides: Any,
    ) -> None:
        self.cache = SemanticCache(
            settings, namespace=namespace, start_degraded=start_degraded, **overrides
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        namespace: str = "default",
        start_degraded: bool = False,
        **overrides: Any,
    ) -> "SyncSemanticCache":
        return cls(settings, namespace=namespace, start_degraded=start_degraded, **overrides)

    def start(self, timeout_s: float = 300.0) -> Self:
        """Start the private loop's thread and the cache on it."""
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="dyna-cache-loop", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._run(self.cache.start(), timeout_s)
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self, timeout_s: float = 120.0) -> None:
        """Close the cache, then stop and join the private loop's thread."""
        if self._loop is None:
            return
        try:
            self._run(self.cache.close(), timeout_s)
        finally:
            self._stop_loop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def ready(self) -> bool:
        return self.cache.ready

    check = _blocking(SemanticCache.check)
    answer = _blocking(SemanticCache.answer)
    store = _blocking(SemanticCache.store)
    delete = _blocking(SemanticCache.delete)
    clear = _blocking(SemanticCache.clear)
    stats = _blocking(SemanticCache.stats)
    wait_ready = _blocking(SemanticCache.wait_ready)

    def run(self, work: Coroutine[Any, Any, R]) -> R:
        """Run ``work`` (a coroutine on ``self.cache``, such as ``dyna_cache.chats``'s
        calls) on the cache's own loop, and wait for it."""
        return self._run(work)

    async def run_async(self, work: Coroutine[Any, Any, R]) -> R:
        """Await ``work`` (one of ``self.cache``'s coroutines) from another event loop: it
        runs on the cache's own loop, the caller's loop is not blocked."""
        if self._loop is None:
            work.close()
            raise NotStarted("start the cache first: `cache.start()` or `with`")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def _run(self, work: Coroutine[Any, Any, R], timeout_s: float | None = None) -> R:
        if self._loop is None:
            work.close()
            raise NotStarted("start the cache first: `cache.start()` or `with`")
        if threading.current_thread() is self._thread:
            work.close()
            raise RuntimeError("a blocking call from inside the cache's own loop would hang")
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout_s)

    def _stop_loop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return

        async def wind_down() -> None:  # the loop's worker threads (asyncio.to_thread's)
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()

        if thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(wind_down(), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
        loop.close()
