"""How a cache answer says what it was, in headers (bodies stay the API's or OpenAI's)."""

import time

from index.decision.distance import similarity


def cache_headers(
    status: str,
    replica_id: str,
    distance: float | None = None,
    entry_id: str | None = None,
    created: float | None = None,
    server_timing: str | None = None,
    refused_by: str | None = None,
) -> dict[str, str]:
    """``X-Cache`` (HIT, MISS, BYPASS; in shadow mode SHADOW-HIT or SHADOW-MISS: what the
    cache would have done, the LLM answered); ``X-Cache-Similarity`` (of the served entry, or of
    the nearest one on a MISS); ``X-Cache-Entry`` (the entry served, or the one a MISS
    stored); a HIT's ``Age``; ``X-Replica``; ``Server-Timing`` (milliseconds per stage of the
    lookup: embed, search, verify, redis, llm, and the total); on a MISS with a near
    candidate, ``X-Cache-Refused-By`` (what refused it: a rule, a stage, the bound)."""
    headers = {"X-Cache": status, "X-Replica": replica_id}
    if server_timing:
        headers["Server-Timing"] = server_timing
    if distance is not None:
        headers["X-Cache-Similarity"] = f"{similarity(distance):.4f}"
    if entry_id:
        headers["X-Cache-Entry"] = entry_id
    if refused_by and status != "HIT":
        headers["X-Cache-Refused-By"] = refused_by
    if status == "HIT" and created is not None:
        headers["Age"] = str(int(max(0.0, time.time() - created)))
    return headers
