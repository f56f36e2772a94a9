"""What ``/v1/stats`` and the dashboard show: the numbers across replicas, with this
replica's decision stage and LLM (one assembly for both, so that they never differ)."""

from typing import Any

from service.engine.insights import current_stats
from service.llm.client import describe_llm
from service.runtime import Runtime


async def stats_view(runtime: Runtime, namespaces: set[str] | None) -> dict[str, Any]:
    """``/v1/stats`` (``namespaces``: only those, as a tenant sees it; None: all, as the
    operator does, with the upstream's address)."""
    numbers = await current_stats(
        runtime.store, runtime.queries.decision.stage, namespaces, runtime.check_error
    )
    numbers["llm"] = describe_llm(runtime.settings, operator=namespaces is None)
    return numbers
