"""The runtime's assembly: settings → Redis, embedder, local index, sync, decision, LLM →
a ``Runtime``. Neither the web app nor the library owns it: the service's lifespan
(``service/app.py``) and the in-process library (``dyna_cache``) both start here."""

import asyncio
import contextlib
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from index.decision.decide import Decision
from index.decision.judges import VerifierJudge
from index.decision.stage import DecisionStage
from index.decision.verifier import Verifier
from index.embedding.embedder import load_embedder
from index.embedding.onnx_embedder import EMBEDDER_META, model_files
from index.embedding.protocol import Embedder
from index.embedding.worker import EmbeddingWorker
from index.lookup import VectorSide
from index.packed_model import WEIGHTS_NAME
from index.store.connection import RedisClient, connect
from index.store.redis_store import RedisStore
from index.sync.event_feed import EventFeed
from index.sync.replica_sync import ReplicaSync
from index.vectors.local_index import LocalIndex
from index.vectors.sub_index import IndexShape
from service.embedded_redis import EmbeddedRedis
from service.engine import tracing
from service.engine.audits import Auditor
from service.engine.coalescing import MissCoalescer
from service.engine.entries import EntryManager
from service.engine.feedback import FeedbackBook
from service.engine.metrics import Metrics
from service.engine.outcomes import Outcomes
from service.engine.probe import Probes
from service.engine.query_path import QueryPath
from service.engine.shadow import Shadow
from service.engine.telemetry import Telemetry
from service.keying.rag import RagSplitter
from service.llm.client import (
    anthropic_upstream,
    make_llm_client,
    openai_upstream,
)
from service.proxy.api_proxy import ApiProxy
from service.proxy.chat_completions import ChatDialect
from service.proxy.messages_api import MessagesDialect
from service.proxy.responses_api import ResponsesDialect
from service.redis_supervisor import RedisSupervisor
from service.runtime import Runtime
from service.settings import Settings
from service.tenancy.rate_limit import RateLimiter
from service.tenancy.tenants import TenantStore

log = logging.getLogger(__name__)


async def open_runtime(settings: Settings, stack: contextlib.AsyncExitStack) -> Runtime:
    """A replica's runtime, closed with ``stack``: on ``settings.redis_url``, else on an
    embedded Redis it starts, watches and restarts (``service/redis_supervisor.py``). The
    service's lifespan and the in-process library (``dyna_cache``) both start here; a
    second process on the same data folder joins the Redis the first one runs."""
    redis_url, supervisor = settings.redis_url, None
    if redis_url is None:
        # started from this (the loop's) thread: the child's death signal follows the thread
        # that spawned it (PR_SET_PDEATHSIG), and a worker thread may end before the service
        embedded = EmbeddedRedis(
            settings.redis_data_dir, appendfsync=settings.redis_appendfsync
        ).start_or_join()
        stack.callback(embedded.stop)
        redis_url = embedded.url
        supervisor = RedisSupervisor(embedded)
        supervisor.start()
        stack.push_async_callback(supervisor.stop)
    runtime = await start_runtime(settings, redis_url, stack)
    runtime.redis_supervisor = supervisor
    log.info("replica %s: Redis at %s", settings.replica_id, redis_url)
    return runtime


def load_verifier(settings: Settings) -> Verifier | None:
    """The trained verifier when it is on and built; else None (the static threshold)."""
    if settings.verifier == "off":
        return None
    if not settings.verifier_path.exists():
        log.warning(
            "verifier on but %s is missing (make models builds it): static threshold only",
            settings.verifier_path,
        )
        return None
    verifier = Verifier.load(settings.verifier_path)
    log.info("verifier: radius %.2f, cut %.2f", verifier.radius, verifier.cut)
    return verifier


def snapshot_folder(settings: Settings) -> Path | None:
    """Where this replica keeps its index snapshot (None: it keeps none)."""
    if not settings.index_snapshots:
        return None
    return settings.index_snapshot_dir or settings.redis_data_dir.parent / "index-snapshot"


def embedder_identity(settings: Settings) -> str:
    """What the vectors of a snapshot must have come from: the backend and its model file."""
    if settings.embedder == "torch":
        return f"torch:{settings.model_path or 'packaged'}"
    model_file, _ = model_files(settings.onnx_dir, settings.embedder)
    if model_file.is_dir():  # the shipped, packed model: its weights' digest, as recorded
        meta = json.loads((model_file / EMBEDDER_META).read_text())
        return f"{settings.embedder}:{meta['files_sha256'][WEIGHTS_NAME][:16]}"
    size = model_file.stat().st_size if model_file.exists() else 0
    return f"{settings.embedder}:{model_file.name}:{size}"


def embedding_lanes(settings: Settings) -> tuple[int, int | None]:
    """``(lanes, threads a lone text runs on)``: by default one lane per core available to
    this process (ONNX); torch has one lane on its own default threads."""
    if settings.embedder == "torch":
        return 1, settings.embed_threads
    cores = len(os.sched_getaffinity(0))
    return settings.embed_lanes or cores, settings.embed_threads or cores


def load_lane_embedders(
    settings: Settings, lanes: int, threads: int | None
) -> tuple[Embedder, Embedder | None]:
    """The embedder a lone text runs on (``threads``), and with several lanes the one each
    lane runs on while another is busy (the cores shared out between the lanes)."""
    load = functools.partial(
        load_embedder, settings.embedder, settings.model_path, onnx_dir=str(settings.onnx_dir)
    )
    if lanes <= 1 or settings.embedder == "torch":
        return load(threads=threads), None
    return load(threads=threads), load(threads=max(1, (threads or lanes) // lanes))


STOP_STEP_BOUND_S = 30.0


def on_stop(
    stack: contextlib.AsyncExitStack,
    close: Callable[[], Awaitable[object]],
    name: str,
    bound_s: float = STOP_STEP_BOUND_S,
) -> None:
    """Run ``close`` at shutdown, for at most ``bound_s``: a stop never hangs on one step
    (one held a test's teardown on a Redis Cluster for 300 s, which step not known); the
    step that overran is named in the log and the others still run."""

    async def bounded() -> None:
        try:
            await asyncio.wait_for(close(), bound_s)
        except TimeoutError:
            log.error("shutdown: %s did not finish in %g s; going on without it", name, bound_s)

    stack.push_async_callback(bounded)


def _store(client: RedisClient, settings: Settings, dim: int) -> RedisStore:
    return RedisStore(
        client,
        origin=settings.replica_id,
        dim=dim,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
    )


async def start_runtime(
    settings: Settings, redis_url: str, stack: contextlib.AsyncExitStack
) -> Runtime:
    if settings.traces and tracing.enable():
        log.info("traces on: a span per lookup, a child per stage")
    lanes, threads = embedding_lanes(settings)
    model, lane_model = await asyncio.to_thread(load_lane_embedders, settings, lanes, threads)
    embedder = EmbeddingWorker(
        model, lanes, settings.embed_max_batch, settings.embed_max_wait_ms, lane_model
    )
    on_stop(stack, embedder.close, "the embedding lanes")
    # the request path's Redis, and the background's (its own timeout and breaker)
    client = connect(redis_url, settings.redis_timeout_s, f"dc:{settings.replica_id}")
    on_stop(stack, client.aclose, "the Redis client")
    store = _store(client, settings, embedder.dim)
    on_stop(stack, store.aclose, "the store")
    background_client = connect(
        redis_url, settings.redis_background_timeout_s, f"dc-bg:{settings.replica_id}"
    )
    on_stop(stack, background_client.aclose, "the background's Redis client")
    background = _store(background_client, settings, embedder.dim)
    on_stop(stack, background.aclose, "the background's store")
    index = LocalIndex(
        embedder.dim,
        IndexShape(
            hnsw_min_entries=settings.hnsw_min_entries,
            hnsw_m=settings.hnsw_m,
            codec=settings.index_codec,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef_search=settings.hnsw_ef_search,
            compact_ratio=settings.compact_ratio,
        ),
    )
    sync = ReplicaSync(
        background,
        index,
        feed_factory=lambda: EventFeed(background, redis_url, f"dc-sub:{settings.replica_id}"),
        page_size=settings.rebuild_page_size,
        drift_check_interval_s=settings.drift_check_interval_s,
        snapshot_dir=snapshot_folder(settings),
        snapshot_interval_s=settings.index_snapshot_interval_s,
        embedder_id=embedder_identity(settings),
        affine=settings.namespace_affinity,
        release_after_s=settings.namespace_release_s,
    )
    sync.start()
    on_stop(stack, sync.stop, "the replica sync (and its snapshot)")
    llm = make_llm_client(settings)
    on_stop(stack, llm.aclose, "the LLM client")
    # the other client APIs' own upstreams (None: the chat LLM answers them)
    responses_upstream = openai_upstream(settings) if settings.llm == "openai" else None
    messages_upstream = anthropic_upstream(settings)
    for upstream in (responses_upstream, messages_upstream):
        if upstream is not None:
            on_stop(stack, upstream.aclose, "an upstream client")
    telemetry = Telemetry(
        background.stats,
        settings.replica_id,
        background.touch,
        settings.stats_flush_interval_s,
        Metrics(settings.metrics_max_namespaces),
    )
    telemetry.start()
    on_stop(stack, telemetry.stop, "the telemetry flush")
    splitter = RagSplitter(settings.rag_patterns, enabled=settings.rag_normalise)
    verifier = load_verifier(settings)
    decision = DecisionStage(
        settings.pair_model_dir if settings.pair_model != "off" else None,
        fallback=VerifierJudge(verifier) if verifier is not None else None,
        reload_s=settings.decision_reload_s,
        threads=settings.embed_threads,
        only_if_better=settings.pair_model == "auto",
    )
    await asyncio.to_thread(decision.load_now)
    decision.start()
    on_stop(stack, decision.stop, "the decision stage")
    log.info("decision stage: %s (%s)", decision.name, decision.describe().get("version", "-"))
    vectors = VectorSide(store, index, sync)
    feedback = FeedbackBook(settings, store, embedder, splitter)
    rate_limiter = RateLimiter(store.rate_limits)
    auditor = Auditor(settings, store, llm, embedder, feedback, rate_limiter, telemetry.metrics)
    on_stop(stack, auditor.stop, "the audits under way")
    shadow = Shadow(store, auditor, telemetry.metrics)
    on_stop(stack, shadow.stop, "the shadow counts under way")
    outcomes = Outcomes(telemetry, auditor, shadow)
    coalescer = MissCoalescer(
        store, lock_ttl_s=settings.coalesce_lock_s, lock_life_s=settings.coalesce_lock_life_s
    )
    probes = Probes(settings, decision, splitter)
    judged = Decision(decision, auditor, settings.learn_radius)
    queries = QueryPath(settings, vectors, embedder, llm, probes, judged, coalescer, outcomes)
    max_temperature = settings.chat_max_temperature
    runtime = Runtime(
        settings=settings,
        store=store,
        index=index,
        sync=sync,
        embedder=embedder,
        llm=llm,
        telemetry=telemetry,
        queries=queries,
        chats=ApiProxy(settings, queries, ChatDialect(llm, splitter, max_temperature)),
        responses=ApiProxy(
            settings, queries, ResponsesDialect(responses_upstream, llm, splitter, max_temperature)
        ),
        messages=ApiProxy(
            settings, queries, MessagesDialect(messages_upstream, llm, splitter, max_temperature)
        ),
        entries=EntryManager(settings, vectors, embedder, splitter),
        feedback=feedback,
        tenants=TenantStore(store.tenants, settings.key_cache_s, settings.key_outage_grace_s),
        rate_limiter=rate_limiter,
    )
    telemetry.metrics.watch(runtime)
    return runtime
