"""``SemanticCache``: the cache in your own process, a replica like any other.

It starts the same runtime as the HTTP service (``service/assembly.open_runtime``): the same
Redis and entries, the same local FAISS index kept in step by the event feed (and Redis's
KNN while it loads), the same decision stage and tenants. An entry it stores is a HIT over
HTTP on another replica, and the reverse.

    async with SemanticCache(redis_url="redis://localhost:6379") as cache:
        found = await cache.check("How do I reset my password?")
        answered = await cache.answer("How can I reset my password?", ask_my_llm)
"""

import asyncio
import contextlib
import difflib
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import urlsplit

import orjson

from dyna_cache.results import Hit, Miss, result_of
from index.store.connection import connect
from index.store.errors import STORE_UNAVAILABLE, RedisClusterException, RedisError
from service.assembly import open_runtime
from service.engine.insights import current_stats
from service.errors import InvalidInput
from service.llm.client import LLMReply
from service.policy.validation import validate_namespace
from service.runtime import Runtime
from service.schemas import CacheMode, QueryRequest, ScopeMode, TenantSettings, TtlPolicy
from service.settings import Settings, default_replica_id

# what ``answer`` calls on a miss: the question in, the answer's text out (a coroutine
# function is awaited; a plain function runs in a worker thread, never on the loop)
CallLLM = Callable[[str], Awaitable[str]] | Callable[[str], str]

_instances = itertools.count(1)


class NotStarted(RuntimeError):
    """The cache was used before ``start()`` (or ``async with``), or after ``close()``."""


class RedisUnreachable(ConnectionError):
    """``start()`` found no Redis answering at ``redis_url`` (and was not asked to start
    degraded)."""


def check_overrides(overrides: dict[str, Any]) -> None:
    """Every keyword override must name a setting: the settings ignore unknown names (they
    read a whole environment), so a misspelt ``treshold=0.01`` would run at the default."""
    fields = sorted(Settings.model_fields)
    for name in sorted(overrides):
        if name not in Settings.model_fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown setting {name!r}{hint}: keyword overrides are the fields of "
                "dyna_cache.Settings"
            )


def check_texts(texts: dict[str, object], required: tuple[str, ...] = ("prompt",)) -> None:
    """The texts of a call are ``str`` (``bytes`` are refused, not decoded on a guess);
    those not ``required`` may be None."""
    for name, value in texts.items():
        if not isinstance(value, str) and (value is not None or name in required):
            raise TypeError(f"{name} must be str, not {type(value).__name__}")


async def require_redis(url: str, timeout_s: float) -> None:
    """Raise ``RedisUnreachable`` unless the Redis at ``url`` answers a PING."""
    client = connect(url, timeout_s, "dc-start-check")
    try:
        await client.ping()
    except (RedisError, RedisClusterException, OSError) as error:
        parts = urlsplit(url)  # host and port only: the URL may carry a password
        raise RedisUnreachable(
            f"Redis at {parts.hostname}:{parts.port or 6379} does not answer "
            f"({type(error).__name__}: {error}). Start it or fix redis_url; or pass "
            "start_degraded=True to start without it (lookups miss and answers pass "
            "through to your LLM until it answers)."
        ) from error
    finally:
        await client.aclose()


def library_settings(settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    """The service's settings (``DYNACACHE_*`` from the environment when none are given),
    with ``overrides``; each in-process cache is a replica with its own id (two caches
    sharing one would each ignore the other's events as their own)."""
    # misses are the application's own LLM's (``call_llm``), never the simulated one's: its
    # answers may be compared (audits, shadow mode) whatever DYNACACHE_LLM says
    own_llm = {"audit_simulated": True}
    if settings is not None and "audit_simulated" in settings.model_fields_set:
        own_llm = {}
    if settings is None:
        chosen = Settings(**{**own_llm, **overrides})
    else:
        chosen = Settings.model_validate({**settings.model_dump(), **own_llm, **overrides})
    if "replica_id" not in overrides and (
        settings is None or "replica_id" not in settings.model_fields_set
    ):
        chosen = chosen.model_copy(
            update={"replica_id": f"{default_replica_id()}-lib{next(_instances)}"}
        )
    if chosen.llm == "simulated" and "audit_rate" not in overrides:
        # an audit calls the application's ``call_llm`` again, in the background (and an
        # LLM judge, audit_check="llm", asks the configured LLM): a library that names no
        # LLM audits only when asked
        chosen = chosen.model_copy(update={"audit_rate": 0.0})
    return chosen


class SemanticCache:
    """The semantic cache, in process (async). ``SyncSemanticCache`` is its blocking twin.

    Options of each call mirror ``POST /v1/query``: ``model`` and ``context`` join the
    scope (entries of another model or context never serve), ``user`` names the end user
    (with scope ``user``, entries are theirs alone), ``threshold`` overrides the HIT radius,
    ``ttl`` / ``ttl_policy`` set how long a stored answer lives, ``namespace`` chooses the
    tenant (default: the cache's own), ``scope`` (``shared`` or ``user``) this call's scope
    mode (default: the tenant's, else the settings').

    ``start_degraded``: start even when ``redis_url`` does not answer (lookups miss and
    ``answer`` passes through until it does); by default ``start()`` raises
    ``RedisUnreachable``. Keyword overrides are fields of ``Settings`` (another name is a
    ``TypeError``)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        namespace: str = "default",
        start_degraded: bool = False,
        **overrides: Any,
    ) -> None:
        validate_namespace(namespace)
        check_overrides(overrides)
        self.settings = library_settings(settings, overrides)
        self.namespace = namespace
        self.start_degraded = start_degraded
        self._runtime: Runtime | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        namespace: str = "default",
        start_degraded: bool = False,
        **overrides: Any,
    ) -> "SemanticCache":
        """A cache with the service's settings object (or ``DYNACACHE_*`` from the
        environment), and keyword overrides of its fields."""
        return cls(settings, namespace=namespace, start_degraded=start_degraded, **overrides)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> Self:
        """Connect (or start the embedded Redis when no ``redis_url`` is set), load the
        embedder and the decision stage, and begin following the index. Lookups work at
        once: from Redis's KNN until the local index is loaded (``ready``). A ``redis_url``
        that does not answer is ``RedisUnreachable``, unless the cache starts degraded."""
        if self._runtime is not None:
            return self
        if self.settings.redis_url is not None and not self.start_degraded:
            await require_redis(self.settings.redis_url, self.settings.redis_background_timeout_s)
        stack = contextlib.AsyncExitStack()
        try:
            self._runtime = await open_runtime(self.settings, stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def close(self) -> None:
        """Stop following the index and close every connection and thread (bounded)."""
        stack, self._stack, self._runtime = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def ready(self) -> bool:
        """The local index is loaded (until then lookups go to Redis's KNN)."""
        return self._runtime is not None and self._runtime.sync.ready

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the local index is loaded, at most ``timeout_s`` (TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        while not self.ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the local index was not loaded within {timeout_s} s")
            await asyncio.sleep(0.05)

    # -- the cache -------------------------------------------------------------------------

    async def check(
        self,
        prompt: str,
        *,
        model: str | None = None,
        context: str | None = None,
        user: str | None = None,
        threshold: float | None = None,
        namespace: str | None = None,
        scope: ScopeMode | None = None,
    ) -> Hit | Miss:
        """Look ``prompt`` up; never calls an LLM. A question that is not cached (per-user
        scope and no user named) is a Miss."""
        check_texts({"prompt": prompt, "model": model, "context": context, "user": user})
        request = QueryRequest(
            prompt=prompt,
            model=model,
            context=context,
            user=user,
            threshold=threshold,
            cache="only",
            scope=scope,
        )
        started = time.perf_counter()
        try:
            return await self._resolve(request, namespace, _lookup_only)
        except _NotLookedUp:  # the query path passes such a question through to an LLM
            elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            return Miss(self._namespace(namespace), elapsed_ms)

    async def answer(
        self,
        prompt: str,
        call_llm: CallLLM,
        *,
        model: str | None = None,
        context: str | None = None,
        user: str | None = None,
        threshold: float | None = None,
        ttl: int | None = None,
        ttl_policy: TtlPolicy | None = None,
        cache: CacheMode = "default",
        namespace: str | None = None,
        scope: ScopeMode | None = None,
    ) -> Hit | Miss:
        """A stored answer when one serves; else ``call_llm(prompt)``'s, stored. Identical
        misses in flight (here or on any replica) share one call. ``cache``: ``default``,
        ``refresh`` (call and overwrite), ``bypass`` (call, store nothing)."""
        check_texts({"prompt": prompt, "model": model, "context": context, "user": user})
        request = QueryRequest(
            prompt=prompt,
            model=model,
            context=context,
            user=user,
            threshold=threshold,
            ttl=ttl,
            ttl_policy=ttl_policy,
            cache=cache,
            scope=scope,
        )

        async def produce(question: str) -> LLMReply:
            started = time.perf_counter()
            if inspect.iscoroutinefunction(call_llm):
                text = await call_llm(question)
            else:
                text = await asyncio.to_thread(call_llm, question)
            if not isinstance(text, str):
                raise TypeError(f"call_llm must return the answer's text, not {type(text)}")
            return reply_of(text, model, (time.perf_counter() - started) * 1000)

        return await self._resolve(request, namespace, produce)

    async def store(
        self,
        prompt: str,
        response: str,
        *,
        model: str | None = None,
        context: str | None = None,
        user: str | None = None,
        ttl: int | None = None,
        ttl_policy: TtlPolicy | None = None,
        namespace: str | None = None,
        message: dict[str, Any] | None = None,
        scope: ScopeMode | None = None,
    ) -> str:
        """Keep ``response`` as the answer to ``prompt``; the new entry's id. ``message``:
        the assistant message to keep with it (JSON-able; ``Hit.message`` gives it back;
        default ``{"role": "assistant", "content": response}``)."""
        runtime, ns = self._running(), self._namespace(namespace)
        check_texts(
            {
                "prompt": prompt,
                "response": response,
                "model": model,
                "context": context,
                "user": user,
            },
            required=("prompt", "response"),
        )
        request = QueryRequest(
            prompt=prompt,
            model=model,
            context=context,
            user=user,
            ttl=ttl,
            ttl_policy=ttl_policy,
            scope=scope,
        )
        if message is not None:
            try:
                orjson.dumps(message)
            except TypeError as error:
                raise InvalidInput("invalid_message", f"message is not JSON: {error}") from error
        reply = reply_of(response, model, 0.0, message)
        kept = await runtime.queries.store_answer(request, ns, reply, await self._tenant(ns))
        return kept.entry_id

    async def delete(self, entry_id: str, *, namespace: str | None = None) -> None:
        """Delete one entry (``service.errors.NotFound`` when the namespace has none)."""
        await self._running().entries.delete(self._namespace(namespace), entry_id)

    async def clear(self, *, namespace: str | None = None) -> int:
        """Delete every entry of the namespace; how many there were."""
        return await self._running().entries.flush(self._namespace(namespace))

    async def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        """``/v1/stats`` for the namespace: hits, misses, savings, the audited
        wrong-answer rate, and this process's decision stage."""
        runtime, ns = self._running(), self._namespace(namespace)
        await runtime.telemetry.flush()  # this process's counts first (else once a second)
        return await current_stats(
            runtime.store, runtime.queries.decision.stage, {ns}, runtime.check_error
        )

    # -- plumbing --------------------------------------------------------------------------

    def _running(self) -> Runtime:
        if self._runtime is None:
            raise NotStarted("start the cache first: `await cache.start()` or `async with`")
        return self._runtime

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            return self.namespace
        validate_namespace(namespace)
        return namespace

    async def _tenant(self, ns: str) -> TenantSettings | None:
        try:
            return await self._running().tenants.settings_of(ns)
        except STORE_UNAVAILABLE:  # the query path passes the lookup through on its own
            return None

    async def _resolve(
        self,
        request: QueryRequest,
        namespace: str | None,
        produce: Callable[[str], Awaitable[LLMReply]] | None,
    ) -> Hit | Miss:
        runtime, ns = self._running(), self._namespace(namespace)
        # an audit sends the MISS's call again: ``call_llm``'s; without one (``check``) the
        # request the application sends its LLM is unknown, and a HIT is not audited
        resolution = await runtime.queries.answer(
            request, ns, await self._tenant(ns), produce=produce, replayable=produce is not None
        )
        return result_of(ns, resolution)


class _NotLookedUp(Exception):
    """``check`` met a question the query path does not look up."""


async def _lookup_only(question: str) -> LLMReply:
    raise _NotLookedUp(question)


def reply_of(
    text: str, model: str | None, latency_ms: float, message: dict[str, Any] | None = None
) -> LLMReply:
    """An answer given by the application's own LLM call, as the cache keeps it."""
    kept = message if message is not None else {"role": "assistant", "content": text}
    return LLMReply(text=text, latency_ms=latency_ms, model=model or "", message=kept)
