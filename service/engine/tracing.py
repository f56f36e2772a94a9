"""OpenTelemetry traces of lookups (``DYNACACHE_TRACES=on``; the ``[otel]`` extra).

Each lookup is a span, ``dynacache.lookup``, child of the current span, with a child span per
stage (``dynacache.embed``, ``.search``, ``.verify``, ``.redis``, ``.llm``) and the outcome's
attributes (namespace, outcome, distance, confidence). Spans go to the process's tracer
provider; with none set, one exporting over OTLP/HTTP is made here (standard
``OTEL_EXPORTER_OTLP_*`` variables). Traces off or opentelemetry absent: a lookup pays nothing.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_tracer: Any = None  # an opentelemetry Tracer while traces are on


def enable(service_name: str = "dyna-cache") -> bool:
    """Turn traces on (a provider exporting over OTLP/HTTP when the process has none);
    False when opentelemetry is not installed."""
    global _tracer
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning(
            "DYNACACHE_TRACES=on but opentelemetry is not installed: pip install "
            "'dyna-cache[otel]'; no traces"
        )
        return False
    if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":  # none set yet
        _install_otlp_provider(service_name)
    _tracer = trace.get_tracer("dyna-cache")
    return True


def disable() -> None:
    global _tracer
    _tracer = None


def _install_otlp_provider(service_name: str) -> None:
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "traces on, no tracer provider set and no OTLP exporter installed "
            "(pip install 'dyna-cache[otel]'): spans are not exported"
        )
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


class LookupSpan:
    """One lookup's span and its stages' children (a no-op when traces are off)."""

    def __init__(self) -> None:
        self._span = _tracer.start_span("dynacache.lookup") if _tracer is not None else None
        self._ended = False

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._span is None:
            yield
            return
        from opentelemetry import trace

        child = _tracer.start_span(
            f"dynacache.{name}", context=trace.set_span_in_context(self._span)
        )
        try:
            yield
        finally:
            child.end()

    def finish(
        self,
        ns: str,
        outcome: str,
        distance: float | None = None,
        confidence: float | None = None,
    ) -> None:
        """The lookup answered: its attributes, and the span ends (once)."""
        if self._span is None or self._ended:
            return
        self._ended = True
        attributes: dict[str, Any] = {"dynacache.namespace": ns, "dynacache.outcome": outcome}
        if distance is not None:
            attributes["dynacache.distance"] = distance
        if confidence is not None:
            attributes["dynacache.confidence"] = confidence
        self._span.set_attributes(attributes)
        self._span.end()

    def fail(self, ns: str, error: BaseException) -> None:
        """The lookup failed (the LLM, a bug): recorded on the span, which ends."""
        if self._span is None or self._ended:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.record_exception(error)
        self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.finish(ns, "error")
