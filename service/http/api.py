"""HTTP routes. Each handler finds the replica's Runtime and hands the work to one piece."""

import dataclasses
from typing import Any

from fastapi import APIRouter, Query, Request, Response, Security
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse

from index.store.errors import RedisError
from service.engine.cache_headers import cache_headers
from service.engine.insights import insights
from service.http.auth import (
    SECURITY_DOCUMENTED,
    Principal,
    authenticate,
    presented_key,
    principal_for,
    require_operator,
)
from service.http.dependencies import RuntimeDep, json_body, parse_body, runtime_of
from service.http.end_user import end_user_of, one_header
from service.http.errors import CALLER_ERRORS, ApiError, documented
from service.http.query_answer import query_response
from service.http.stats_view import stats_view
from service.llm.client import describe_llm
from service.policy.body_cache_controls import merged, take_body_cache_controls
from service.policy.cache_control import parse_cache_control
from service.policy.serving_mode import MODE_HEADER, serving_mode
from service.policy.user_scope import take_body_scope
from service.policy.validation import validate_json, validate_namespace
from service.proxy.api_proxy import ApiProxy, StreamAnswer
from service.proxy.requests import ChatCompletionRequest, MessagesRequest, ResponsesRequest
from service.runtime import Runtime
from service.schemas import (
    MAX_TTL_S,
    DeletedResponse,
    EntriesRequest,
    EntriesResponse,
    FeedbackIn,
    FeedbackOut,
    QueryRequest,
    QueryResponse,
)

router = APIRouter()


_ERRORS = documented(*CALLER_ERRORS, 502, 504)
_ENTRY_ERRORS = documented(*CALLER_ERRORS, 404, 409, 503)


@router.post(
    "/v1/query",
    response_model=QueryResponse,
    responses=_ERRORS,
    tags=["cache"],
    openapi_extra={**SECURITY_DOCUMENTED, "requestBody": json_body(QueryRequest)},
)
async def query(request: Request) -> Response:
    """Answer a prompt from the cache when a close enough one was answered, else from the LLM."""
    # the hot path reads its request itself: FastAPI's dependency solving, body parsing and
    # response validation were a third of an exact HIT's time in the replica
    runtime = runtime_of(request)
    principal = await principal_for(runtime, presented_key(request))
    body = parse_body(QueryRequest, await request.body())
    if body.mode is None:  # the body's mode, else the header's
        body.mode = serving_mode(one_header(request, MODE_HEADER))
    control = parse_cache_control(request.headers.get("cache-control"))
    who = end_user_of(request, runtime, principal.settings, body.scope, body.user)
    resolution = await runtime.queries.answer(body, principal.ns, principal.settings, control, who)
    answer = query_response(principal.ns, resolution)
    headers = cache_headers(
        answer.status,
        runtime.settings.replica_id,
        answer.distance,
        answer.entry_id,
        answer.created,
        resolution.server_timing,
        answer.refused_by,
    )
    return Response(answer.model_dump_json(), media_type="application/json", headers=headers)


def _answer_shapes(description: str) -> dict[str, Any]:
    """A client API's 200: its JSON answer, or with ``stream`` its server-sent events."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {}},
        },
    }


_CHAT_ANSWER = _answer_shapes(
    "An OpenAI `chat.completion`, or with `stream` its `chat.completion.chunk` events, ending "
    "with `data: [DONE]` (each event: a chunk, an error, or [DONE])"
)
_RESPONSES_ANSWER = _answer_shapes(
    "An OpenAI `response`, or with `stream` its events (`response.created` ... "
    "`response.completed`)"
)
_MESSAGES_ANSWER = _answer_shapes(
    "An Anthropic `message`, or with `stream` its events (`message_start` ... `message_stop`)"
)


@router.post("/v1/chat/completions", tags=["openai"], responses={**_ERRORS, 200: _CHAT_ANSWER})
async def chat_completions(
    runtime: RuntimeDep,
    body: ChatCompletionRequest,
    request: Request,
    principal: Principal = Security(authenticate),
) -> Response:
    """OpenAI Chat Completions through the cache: point the `openai` SDK's `base_url` here.
    A HIT needs the same model, system prompt, earlier turns and output parameters; only
    the last user message's question is embedded. Status in `X-Cache` headers."""
    del body  # validated; forwarded as sent
    return await _through(runtime.chats, runtime, request, principal)


@router.post("/v1/responses", tags=["openai"], responses={**_ERRORS, 200: _RESPONSES_ANSWER})
async def responses(
    runtime: RuntimeDep,
    body: ResponsesRequest,
    request: Request,
    principal: Principal = Security(authenticate),
) -> Response:
    """OpenAI Responses through the cache (`client.responses.create`). A HIT needs the same
    model, instructions, earlier input items, tools and output parameters; only the last
    user message's question is embedded. Status in `X-Cache` headers."""
    del body
    return await _through(runtime.responses, runtime, request, principal)


@router.post("/v1/messages", tags=["anthropic"], responses={**_ERRORS, 200: _MESSAGES_ANSWER})
async def messages(
    runtime: RuntimeDep,
    body: MessagesRequest,
    request: Request,
    principal: Principal = Security(authenticate),
) -> Response:
    """Anthropic Messages through the cache (the `anthropic` SDK's `base_url` here; its
    `x-api-key` is the cache's key). A HIT needs the same model, system prompt, earlier
    turns, tools and output parameters. Status in `X-Cache` headers."""
    del body
    return await _through(runtime.messages, runtime, request, principal)


async def _through(
    proxy: ApiProxy, runtime: Runtime, request: Request, principal: Principal
) -> Response:
    """A client API's request through its proxy, with this request's cache controls and
    end user."""
    raw = await request.json()  # forwarded as sent (validated as the route's model)
    validate_json(raw)  # hashed into the scope and forwarded: no 500 on what cannot be
    # LiteLLM's ``cache`` object and the cache's ``scope``: neither scoped nor forwarded
    raw, asked = take_body_cache_controls(raw)
    raw, mode = take_body_scope(raw)
    control = merged(parse_cache_control(request.headers.get("cache-control")), asked)
    # the body's end user: OpenAI's ``user``, Anthropic's ``metadata.user_id``
    who = end_user_of(request, runtime, principal.settings, mode, proxy.dialect.end_user_of(raw))
    if asked is not None and asked.namespace is not None:
        who = dataclasses.replace(who, cache_namespace=asked.namespace)
    ttl = asked.ttl if asked is not None else None
    mode = serving_mode(one_header(request, MODE_HEADER))
    answer = await proxy.respond(raw, principal.ns, principal.settings, control, who, ttl, mode)
    if isinstance(answer, StreamAnswer):
        return EventSourceResponse(answer.events, headers=answer.headers)
    return JSONResponse(answer.payload, headers=answer.headers)


@router.post("/v1/feedback", response_model=FeedbackOut, tags=["cache"], responses=_ENTRY_ERRORS)
async def feedback(
    runtime: RuntimeDep, body: FeedbackIn, principal: Principal = Security(authenticate)
) -> FeedbackOut:
    """Report whether a HIT (`entry_id`, from `X-Cache-Entry`) was right for `prompt`. A
    wrong report stops the entry being served to queries as far from it as that prompt, on
    every replica; a correct one is counted as a report, and widens nothing served."""
    reach = runtime.queries.probes.reach(principal.settings)
    recorded: FeedbackOut = await runtime.feedback.record(principal.ns, body, reach)
    return recorded


@router.get("/v1/stats", tags=["cache"], responses=documented(*CALLER_ERRORS, 503))
async def stats(
    runtime: RuntimeDep, principal: Principal = Security(authenticate)
) -> dict[str, Any]:
    """Hit rate, latencies, latency and cost saved: totals, per namespace and per replica.
    A tenant sees its own namespace only."""
    visible = None if principal.role in ("open", "admin") else {principal.ns}
    return await stats_view(runtime, visible)


@router.get("/v1/insights", tags=["cache"], responses=documented(*CALLER_ERRORS, 503))
async def operator_insights(
    runtime: RuntimeDep, principal: Principal = Security(authenticate)
) -> dict[str, Any]:
    """Per namespace: the recent misses that came closest to a hit (what a looser threshold
    would serve) and the most-served entries. A tenant sees its own namespace only; the
    prompts of per-user scope are null (`personal`), unless the operator shows them to
    the admin (`DYNACACHE_SHOW_PERSONAL_PROMPTS`)."""
    operator = principal.role in ("open", "admin")
    if operator:
        namespaces = sorted(await runtime.store.search.count_by_namespace())
    else:
        namespaces = [principal.ns]
    shown = operator and runtime.settings.show_personal_prompts
    return {"namespaces": await insights(runtime.store, namespaces, shown)}


@router.post(
    "/v1/entries",
    response_model=EntriesResponse,
    status_code=201,
    tags=["entries"],
    responses=_ENTRY_ERRORS,
)
async def add_entries(
    runtime: RuntimeDep, body: EntriesRequest, principal: Principal = Security(authenticate)
) -> EntriesResponse:
    """Store prompt/response pairs without calling the LLM (bulk warm-up). Replacing the
    answer of an entry the namespace holds takes ``overwrite: true`` with a tenant's key."""
    overwrite = body.overwrite or principal.role != "tenant"
    stored = await runtime.entries.store_many(
        body.entries, principal.ns, principal.settings, overwrite=overwrite
    )
    return EntriesResponse(stored=len(stored), entries=stored)


@router.delete(
    "/v1/entries", response_model=DeletedResponse, tags=["entries"], responses=_ENTRY_ERRORS
)
async def delete_old_entries(
    runtime: RuntimeDep,
    older_than: int = Query(ge=0, le=MAX_TTL_S, description="Seconds since stored."),
    principal: Principal = Security(authenticate),
) -> DeletedResponse:
    """Delete the caller's entries stored more than ``older_than`` seconds ago."""
    deleted = await runtime.entries.delete_older_than(principal.ns, older_than)
    return DeletedResponse(deleted=deleted)


@router.delete(
    "/v1/entries/{entry_id}",
    response_model=DeletedResponse,
    tags=["entries"],
    responses=_ENTRY_ERRORS,
)
async def delete_entry(
    runtime: RuntimeDep, entry_id: str, principal: Principal = Security(authenticate)
) -> DeletedResponse:
    """Delete one entry of the caller's namespace (404 for any other id)."""
    await runtime.entries.delete(principal.ns, entry_id)
    return DeletedResponse(deleted=1)


@router.delete(
    "/v1/namespaces/{ns}",
    response_model=DeletedResponse,
    tags=["entries"],
    responses=_ENTRY_ERRORS,
)
async def flush_namespace(
    runtime: RuntimeDep, ns: str, principal: Principal = Security(authenticate)
) -> DeletedResponse:
    """Delete every entry of the caller's own namespace."""
    validate_namespace(ns)
    if ns != principal.ns:
        raise ApiError(404, "namespace_not_found", "no such namespace")
    return DeletedResponse(deleted=await runtime.entries.flush(ns))


@router.get(
    "/v1/replica",
    tags=["health"],
    dependencies=[Security(require_operator)],
    responses=documented(*CALLER_ERRORS, 403),
)
async def replica(runtime: RuntimeDep, ids: bool = False) -> dict[str, Any]:
    """This replica's view: its local index and its sync with Redis (``ids`` lists entries)."""
    sync = runtime.sync
    view: dict[str, Any] = {
        "replica_id": runtime.settings.replica_id,
        "ready": sync.ready,
        "subscribed": sync.subscribed,
        "entries": len(runtime.index),
        "entries_by_namespace": runtime.index.count_by_namespace(),
        "index": runtime.index.describe(),
        "last_seq": sync.last_seq,
        "rebuilds": sync.rebuilds,
        "rebuilds_skipped": sync.rebuilds_skipped,
        "last_rebuild": sync.last_rebuild,
        "snapshot": sync.snapshot,
        "namespace_affinity": sync.affine,
        "held_namespaces": sorted(sync.held_namespaces),
        "reconnects": sync.reconnects,
        "reconciled": sync.reconciled,
        # how often Redis failed to answer, on the request path and in the background
        "redis_breaker_opened": {
            "requests": runtime.store.breaker_openings,
            "background": sync.store.breaker_openings,
        },
        "embedded_redis": (
            runtime.redis_supervisor.describe() if runtime.redis_supervisor else None
        ),
        "texts_embedded": runtime.embedder.texts_embedded,
        "embedding_batches": runtime.embedder.batches,
    }
    if ids:
        view["entry_ids"] = sorted(runtime.index.entry_ids())
    return view


@router.get("/healthz", tags=["health"])
async def healthz(runtime: RuntimeDep) -> JSONResponse:
    """Liveness: the process answers, and the Redis it started itself (if any) runs or is
    being restarted; 503 once restarting it failed again and again (restart the service)."""
    supervisor = runtime.redis_supervisor
    if supervisor is not None and not supervisor.healthy:
        reason = f"embedded Redis failed to start {supervisor.failed_tries} times in a row"
        return JSONResponse({"status": "unhealthy", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", tags=["health"])
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: Redis answers, the local index is loaded and follows Redis's events."""
    checks: dict[str, str] = {}
    try:
        await runtime.store.ping()
        checks["redis"] = "ok"
    except RedisError as error:  # LOADING, NOAUTH and the like are "not ready" too
        checks["redis"] = f"unreachable ({type(error).__name__})"
    checks["index"] = (
        f"ready ({len(runtime.index)} entries)" if runtime.sync.ready else "loading from Redis"
    )
    # not following the events (after a Redis restart, until it re-subscribes and catches
    # up), the replica would serve entries deleted meanwhile
    checks["events"] = "subscribed" if runtime.sync.subscribed else "not subscribed"
    ready = checks["redis"] == "ok" and runtime.sync.ready and runtime.sync.subscribed
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "decision": runtime.queries.decision.stage.describe(),
            "llm": describe_llm(runtime.settings),
        },
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    tags=["health"],
    response_class=PlainTextResponse,
    responses=documented(401, 403, 429),
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this replica (``service/engine/metrics.py``); with
    `DYNACACHE_METRICS_REQUIRE_ADMIN`, for the admin token only."""
    runtime = runtime_of(request)
    if runtime.settings.metrics_require_admin:
        await require_operator(await principal_for(runtime, presented_key(request)))
    metrics = runtime.telemetry.metrics
    try:  # how far behind Redis's sequence the replica is
        seqs = await runtime.store.feed.seqs_of(sorted(runtime.sync.namespaces))
        metrics.redis_seq = sum(seqs.values())
    except RedisError:
        metrics.redis_seq = None
    body = generate_latest(metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
