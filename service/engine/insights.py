"""What an operator reads: the numbers of ``/v1/stats`` and, per namespace, the recent
misses that came closest to a hit (what a looser threshold or cut would have served) and
the most-served entries."""

from typing import Any

from index.policy.distance import similarity
from index.store.redis_store import RedisStore
from service.engine.decision import DecisionStage
from service.engine.telemetry import read_stats
from service.policy import wrong_rate

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
    # the wrong-answer rate of served semantic HITs, from the audits (service/engine/audits)
    audited = await store.audits.counts(sorted(numbers["namespaces"]))
    total: dict[str, float] = {}
    for ns, audit_counts in audited.items():
        numbers["namespaces"][ns]["wrong_answer_rate"] = wrong_rate.summary(audit_counts)
        for name, value in audit_counts.items():
            total[name] = total.get(name, 0.0) + value
    numbers["wrong_answer_rate"] = wrong_rate.summary(total)
    return numbers
