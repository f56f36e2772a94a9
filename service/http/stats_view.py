"""What ``/v1/stats`` and the dashboard show: the numbers across replicas, with this
replica's decision stage, LLM, mode and whether it compares answers (one assembly for both,
so that they never differ)."""

from typing import Any

from service.engine.audits import comparisons_off
from service.engine.insights import current_stats
from service.llm.client import describe_llm
from service.runtime import Runtime


async def stats_view(runtime: Runtime, namespaces: set[str] | None) -> dict[str, Any]:
    """``/v1/stats`` (``namespaces``: only those, as a tenant sees it; None: all, as the
    operator does, with the upstream's address)."""
    numbers = await current_stats(
        runtime.store, runtime.queries.decision.stage, namespaces, runtime.check_error
    )
    settings = runtime.settings
    numbers["llm"] = describe_llm(settings, operator=namespaces is None)
    numbers["mode"] = settings.mode
    # audits and shadow mode compare answers: never the simulated LLM's made-up ones
    off = comparisons_off(settings)
    numbers["audits"] = {"enabled": off is None, "reason": off, "rate": settings.audit_rate}
    return numbers
