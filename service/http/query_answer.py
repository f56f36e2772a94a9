"""``POST /v1/query``'s answer body, from how the query path resolved it."""

from index.decision.distance import similarity
from service.engine.resolution import Resolution
from service.schemas import QueryResponse


def query_response(ns: str, resolution: Resolution) -> QueryResponse:
    """``/v1/query``'s answer body (SHADOW-HIT: the LLM's answer, and the entry that
    would have served)."""
    entry, reply, distance = resolution.entry, resolution.reply, resolution.distance
    kept = resolution.kept
    return QueryResponse(
        response=reply.text if reply else entry.response if entry else None,
        status=resolution.status,
        distance=distance,
        similarity=similarity(distance) if distance is not None else None,
        matched_prompt=entry.prompt if entry else None,
        entry_id=entry.entry_id if entry else resolution.entry_id,
        latency_ms=resolution.latency_ms,
        llm_latency_ms=reply.latency_ms if reply else None,
        namespace=ns,
        created=entry.created if entry else kept.created if kept else None,
        expires_at=entry.expires_at if entry else kept.expires_at if kept else None,
        confidence=resolution.confidence,
        refused_by=resolution.refused_by,
    )
