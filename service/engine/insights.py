"""What an operator reads: the numbers of ``/v1/stats`` and, per namespace, the recent
misses that came closest to a hit (what a looser threshold or cut would have served) and
the most-served entries."""

from typing import Any

from index.policy.distance import similarity
from index.store.redis_store import RedisStore
from service.engine.decision import DecisionStage
from service.engine.telemetry import read_stats

NEAREST_SHOWN = 10
MOST_SERVED_SHOWN = 10


async def insights(store: RedisStore, namespaces: list[str]) -> dict[str, Any]:
    """``{ns: {"closest_misses": [...], "most_served": [...]}}`` for each namespace."""
    found: dict[str, Any] = {}
    for ns in namespaces:
        misses = await store.insights.near_misses(ns)
        closest = sorted(misses, key=lambda miss: miss["distance"])[:NEAREST_SHOWN]
        prompts = await store.insights.prompts_of(ns, [miss["nearest_id"] for miss in closest])
        found[ns] = {
            "closest_misses": [
                {
                    "prompt": miss["prompt"],
                    "nearest_prompt": prompts.get(miss["nearest_id"]),  # None: gone since
                    "distance": round(miss["distance"], 4),
                    "similarity": round(similarity(miss["distance"]), 4),
                    "confidence": miss.get("confidence"),
                }
                for miss in closest
            ],
            "most_served": [
                {"entry_id": entry_id, "prompt": prompt, "hits": hits}
                for entry_id, prompt, hits in await store.insights.most_served(
                    ns, MOST_SERVED_SHOWN
                )
            ],
        }
    return found


async def current_stats(
    store: RedisStore, decision: DecisionStage, namespaces: set[str] | None
) -> dict[str, Any]:
    """``/v1/stats``: totals, per namespace (only ``namespaces`` when given) and per replica,
    with this replica's decision stage."""
    counts = await store.search.count_by_namespace()
    numbers = await read_stats(store.client, counts, namespaces)
    numbers["decision"] = decision.describe()
    return numbers
