"""OpenTelemetry traces of lookups, caught with the SDK's in-memory exporter: a span per
lookup with a child per stage, carrying the namespace, the outcome and the distance."""

from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.engine import tracing
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService, wait_until

EXPORTED = InMemorySpanExporter()


@pytest.fixture
def traced(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> Iterator[CacheService]:
    if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTED))
        trace.set_tracer_provider(provider)  # the application's own provider
    EXPORTED.clear()
    yield start_service(
        traces=True, llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk",
        openai_model="fake-model", llm_max_retries=0, llm_timeout_s=5.0,
    )  # fmt: skip
    tracing.disable()  # the other tests' replicas trace nothing


def lookups() -> list[ReadableSpan]:
    return [s for s in EXPORTED.get_finished_spans() if s.name == "dynacache.lookup"]


def children_of(parent: ReadableSpan) -> set[str]:
    own = parent.context.span_id
    spans = EXPORTED.get_finished_spans()
    return {span.name for span in spans if span.parent is not None and span.parent.span_id == own}


def test_a_span_per_lookup_with_its_stages_and_outcome(
    traced: CacheService, upstream: FakeUpstream
) -> None:
    assert traced.query("What is the capital of France?").json()["status"] == "MISS"
    assert traced.query("Tell me the capital of France").json()["status"] == "HIT"
    traced.query("Who painted the Mona Lisa?")  # a miss with a candidate it did not serve
    wait_until(lambda: len(lookups()) == 3, 10, message="three lookup spans")
    miss, hit, far = lookups()
    assert miss.attributes == {"dynacache.namespace": "default", "dynacache.outcome": "miss"}
    assert {"dynacache.embed", "dynacache.search", "dynacache.redis", "dynacache.llm"} <= (
        children_of(miss)
    )
    assert hit.attributes is not None and hit.attributes["dynacache.outcome"] == "hit"
    assert 0 < float(hit.attributes["dynacache.distance"]) < 0.35  # type: ignore[arg-type]
    assert "dynacache.llm" not in children_of(hit)
    assert far.attributes is not None and far.attributes["dynacache.outcome"] == "miss"
    assert float(far.attributes["dynacache.distance"]) > 0.35  # type: ignore[arg-type]
    assert hit.context.trace_id != miss.context.trace_id  # a trace per request


def test_a_failed_lookup_is_an_error_span(traced: CacheService, upstream: FakeUpstream) -> None:
    upstream.plan.append("500")
    assert traced.query("What is the speed of light?").status_code == 502
    wait_until(lambda: len(lookups()) == 1, 10, message="the failed lookup's span")
    failed = lookups()[0]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["dynacache.outcome"] == "error"
    assert any(event.name == "exception" for event in failed.events)
