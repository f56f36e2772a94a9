"""Where one request's time went: milliseconds per stage of the query path.

A :class:`StageTimes` travels with the request (in its ``Probe``); each stage adds the time it
took with ``with times.measure("embed"):``. At the end the totals feed the per-stage
histograms (``service/engine/metrics.py``); with traces on, each stage is also a span under
the lookup's (``service/engine/tracing.py``).
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from service.engine.tracing import LookupSpan

Stage = Literal["embed", "search", "verify", "redis", "llm"]
STAGES: tuple[Stage, ...] = ("embed", "search", "verify", "redis", "llm")


class StageTimes:
    """Milliseconds spent per stage by one request (a stage entered twice adds up)."""

    def __init__(self, span: LookupSpan | None = None) -> None:
        self.ms: dict[Stage, float] = {}
        self.span = span  # the lookup's trace span (a no-op one when traces are off)

    @contextmanager
    def measure(self, stage: Stage) -> Iterator[None]:
        started = time.perf_counter()
        try:
            if self.span is None:
                yield
            else:
                with self.span.stage(stage):
                    yield
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.ms[stage] = self.ms.get(stage, 0.0) + elapsed

    def server_timing(self, total_ms: float) -> str:
        """The ``Server-Timing`` header: each stage's milliseconds, then the total."""
        parts = [f"{stage};dur={self.ms[stage]:.2f}" for stage in STAGES if stage in self.ms]
        return ", ".join([*parts, f"total;dur={total_ms:.2f}"])
