"""What an operator reads: the numbers of ``/v1/stats`` and, per namespace, the recent
misses that came closest to a hit (what a looser threshold or cut would have served) and
the most-served entries."""

from typing import Any

from index.decision import wrong_rate
from index.decision.distance import similarity
from index.decision.stage import DecisionStage
from index.store.redis_store import RedisStore
from service.engine.shadow import shadow_stats
from service.engine.telemetry import read_stats

NEAREST_SHOWN = 10
MOST_SERVED_SHOWN = 10


async def insights(
    store: RedisStore, namespaces: list[str], show_personal: bool = False
) -> dict[str, Any]:
    """``{ns: {"closest_misses": [...], "most_served": [...]}}`` for each namespace. The
    prompts of per-user scope ("what is my balance? my IBAN is ...") are one end user's:
    null, marked ``personal``, unless ``show_personal``."""
    found: dict[str, Any] = {}
    for ns in namespaces:
        misses = await store.insights.near_misses(ns)
        closest = sorted(misses, key=lambda miss: miss["distance"])[:NEAREST_SHOWN]
        prompts = await store.insights.prompts_of(ns, [miss["nearest_id"] for miss in closest])
        closest_misses = []
        for miss in closest:
            # a personal miss's nearest entry is in its scope: the same user's
            hidden = bool(miss.get("personal")) and not show_personal
            closest_misses.append(
                {
                    "prompt": None if hidden else miss["prompt"],
                    # None: gone since (or hidden)
                    "nearest_prompt": None if hidden else prompts.get(miss["nearest_id"]),
                    "distance": round(miss["distance"], 4),
                    "similarity": round(similarity(miss["distance"]), 4),
                    "confidence": miss.get("confidence"),
                    "personal": bool(miss.get("personal")),
                }
            )
        served = await store.insights.most_served(ns, MOST_SERVED_SHOWN)
        found[ns] = {
            "closest_misses": closest_misses,
            "most_served": [
                {
                    "entry_id": entry_id,
                    "prompt": None if personal and not show_personal else prompt,
                    "hits": hits,
                    "personal": personal,
                }
                for entry_id, prompt, hits, personal in served
            ],
        }
    return found


async def current_stats(
    store: RedisStore,
    decision: DecisionStage,
    namespaces: set[str] | None,
    check: wrong_rate.CheckError = wrong_rate.EXACT,
) -> dict[str, Any]:
    """``/v1/stats``: totals, per namespace (only ``namespaces`` when given) and per replica,
    with this replica's decision stage; the wrong-answer estimate corrected for ``check``;
    where shadow mode ran, what it would have served."""
    counts = await store.search.count_by_namespace()
    numbers = await read_stats(store.stats, counts, namespaces)
    numbers["decision"] = decision.describe()
    # the wrong-answer rate of served semantic HITs, from the audits (service/engine/audits)
    audited = await store.audits.counts(sorted(numbers["namespaces"]))
    total: dict[str, float] = {}
    for ns, audit_counts in audited.items():
        numbers["namespaces"][ns]["wrong_answer_rate"] = wrong_rate.summary(audit_counts, check)
        for name, value in audit_counts.items():
            total[name] = total.get(name, 0.0) + value
    numbers["wrong_answer_rate"] = wrong_rate.summary(total, check)
    # shadow mode: what the cache would have served (service/engine/shadow.py)
    per_ns, shadowed = await shadow_stats(store, audited, check)
    for ns, figures in per_ns.items():
        numbers["namespaces"][ns]["shadow"] = figures
    if shadowed is not None:
        numbers["shadow"] = shadowed
    return numbers
