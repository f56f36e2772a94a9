"""The engine's rules, tested where they live: the query path built by the composition root
with its real parts (ONNX embedder, local FAISS index, simulated LLM, the session's real
Redis), called in process, no HTTP in between."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis

from index.decision.distance import DEFAULT_THRESHOLD
from index.store import keys
from index.store.records import StoredEntry
from service.assembly import start_runtime
from service.embedded_redis import EmbeddedRedis
from service.engine.probe import Asks, Probe
from service.engine.query_path import QueryPath
from service.engine.resolution import Found, Missed, Resolution
from service.keying.prompt_key import prompt_key
from service.llm.client import LLMReply, complete
from service.policy.cache_control import CacheControl, parse_cache_control
from service.policy.precedence import first_set
from service.runtime import Runtime
from service.schemas import TenantSettings
from service.tenancy.tenants import retention_for
from tests.conftest import make_settings

STORED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


@contextlib.asynccontextmanager
async def engine(redis_server: EmbeddedRedis, **overrides: object) -> AsyncIterator[Runtime]:
    async with contextlib.AsyncExitStack() as stack:
        settings = make_settings(redis_server.url, **overrides)
        runtime = await start_runtime(settings, redis_server.url, stack)
        deadline = time.monotonic() + 30
        while not runtime.sync.ready:  # a condition with a deadline, not a sleep
            assert time.monotonic() < deadline, "the replica did not become ready"
            await asyncio.sleep(0.01)
        yield runtime


@pytest.fixture
async def runtime(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> AsyncIterator[Runtime]:
    """A runtime with the default settings, over an emptied Redis."""
    async with engine(redis_server) as started:
        yield started


def probe_for(
    queries: QueryPath, prompt: str, control: CacheControl | None = None, **choices: object
) -> Probe:
    key = prompt_key(queries.probes.splitter, prompt, None, [None])
    asks = Asks(**choices)  # type: ignore[arg-type]
    return queries.probes.probe("default", key, None, None, control or CacheControl(), asks)


async def stored(queries: QueryPath, prompt: str, answer: str) -> str:
    """Store ``answer`` for ``prompt`` through the query path (a MISS whose LLM is us)."""
    reply = LLMReply(
        text=answer, latency_ms=5.0, model="", message={"role": "assistant", "content": answer}
    )

    async def produce() -> LLMReply:
        return reply

    resolution = await queries.resolve(probe_for(queries, prompt), produce)
    assert resolution.status == "MISS" and resolution.entry_id is not None
    return resolution.entry_id


async def test_paraphrase_is_found_and_a_far_question_is_not(runtime: Runtime) -> None:
    queries = runtime.queries
    entry_id = await stored(queries, STORED, "Use the reset link.")
    found = await queries.look_up(probe_for(queries, PARAPHRASE))
    assert isinstance(found, Found) and found.entry.entry_id == entry_id
    assert 0 < found.distance < DEFAULT_THRESHOLD
    far = await queries.look_up(probe_for(queries, "What is the boiling point of water?"))
    assert isinstance(far, Missed) and far.nearest is not None
    assert far.nearest >= DEFAULT_THRESHOLD


async def test_a_zero_threshold_serves_only_exact_repeats(runtime: Runtime) -> None:
    queries = runtime.queries
    await stored(queries, STORED, "Use the reset link.")
    assert isinstance(await queries.look_up(probe_for(queries, PARAPHRASE, threshold=0.0)),
                      Missed)  # fmt: skip
    exact = await queries.look_up(probe_for(queries, STORED, threshold=0.0))
    assert isinstance(exact, Found) and exact.distance == 0.0


async def test_max_age_refuses_entries_older_than_asked(runtime: Runtime) -> None:
    queries = runtime.queries
    await stored(queries, STORED, "Use the reset link.")
    old_enough = parse_cache_control("max-age=0")
    assert isinstance(
        await queries.look_up(probe_for(queries, PARAPHRASE, control=old_enough)), Missed
    )
    young_enough = parse_cache_control("max-age=3600")
    assert isinstance(
        await queries.look_up(probe_for(queries, PARAPHRASE, control=young_enough)), Found
    )


async def test_feedback_radius_refuses_queries_beyond_it(runtime: Runtime) -> None:
    queries = runtime.queries
    entry_id = await stored(queries, STORED, "Use the reset link.")
    found = await queries.look_up(probe_for(queries, PARAPHRASE))
    assert isinstance(found, Found)
    exists, radius = await runtime.store.record_feedback(
        "default", entry_id, correct=False, radius=found.distance / 2, report={"why": "t"}
    )
    assert exists and radius == pytest.approx(found.distance / 2)
    assert isinstance(await queries.look_up(probe_for(queries, PARAPHRASE)), Missed)
    # the stored question itself (distance 0) is still inside the radius
    assert isinstance(await queries.look_up(probe_for(queries, STORED)), Found)


async def test_verifier_cut_decides_between_served_and_refused(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    async with engine(redis_server, verifier="on") as runtime:
        queries = runtime.queries
        assert queries.decision.stage.name == "verifier", (
            "make verifier-model builds it (make test)"
        )
        await stored(queries, STORED, "Use the reset link.")
        accepted = await queries.look_up(probe_for(queries, PARAPHRASE, verifier_cut=0.0))
        assert isinstance(accepted, Found) and accepted.confidence is not None
        refused = await queries.look_up(probe_for(queries, PARAPHRASE, verifier_cut=1.0))
        assert isinstance(refused, Missed)
        assert refused.confidence == pytest.approx(accepted.confidence)
        # exact repeats are not judged: the verifier decides only near neighbours
        exact = await queries.look_up(probe_for(queries, STORED, verifier_cut=1.0))
        assert isinstance(exact, Found) and exact.confidence is None


async def test_bypass_and_only_modes(runtime: Runtime) -> None:
    queries = runtime.queries
    only = await queries.resolve(
        probe_for(queries, STORED, mode="only"),
        lambda: complete(queries.llm, STORED, None),
    )
    assert only.status == "MISS" and only.reply is None and only.entry_id is None
    passed = await queries.resolve(
        probe_for(queries, STORED, mode="bypass"),
        lambda: complete(queries.llm, STORED, None),
    )
    assert passed.status == "BYPASS" and passed.reply is not None
    assert len(runtime.index) == 0  # neither stored anything


async def test_record_counts_each_outcome_once(runtime: Runtime) -> None:
    queries = runtime.queries
    await stored(queries, STORED, "Use the reset link.")
    probe = probe_for(queries, PARAPHRASE)
    found = await queries.look_up(probe)
    assert isinstance(found, Found)
    queries.outcomes.record(probe, Resolution.hit(probe, found))
    queries.outcomes.record_bypass("default", time.perf_counter(), None)
    await runtime.telemetry.flush()
    raw = await runtime.store.client.hgetall(keys.stats_key("default"))
    counts = {name.decode(): float(value) for name, value in raw.items()}
    assert counts["requests"] == 3  # the MISS that stored, the HIT, the BYPASS
    assert counts["hits"] == 1 and counts["misses"] == 1 and counts["bypasses"] == 1


# -- precedence: the request, then the tenant, then the service; 0 is a value ----------


def test_first_set_takes_zero_as_a_value() -> None:
    assert first_set(None, 0, 5) == 0
    assert first_set(0.0, 1.0) == 0.0
    assert first_set(None, None, "default") == "default"
    with pytest.raises(ValueError):
        first_set(None, None)


@pytest.mark.parametrize(
    ("request_ttl", "tenant_ttl", "expected"),
    [(None, None, 7 * 24 * 3600), (None, 60, 60), (30, 60, 30), (0, 60, 0), (None, 0, 0)],
)
def test_retention_precedence(
    redis_server: EmbeddedRedis, request_ttl: int | None, tenant_ttl: int | None, expected: int
) -> None:
    settings = make_settings(redis_server.url)
    tenant = TenantSettings(default_ttl_s=tenant_ttl) if tenant_ttl is not None else None
    assert retention_for(settings, tenant, request_ttl).ttl == expected


async def test_probe_threshold_precedence(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    async with engine(redis_server, threshold=0.3) as runtime:
        queries = runtime.queries
        key = prompt_key(queries.probes.splitter, STORED, None, [None])

        def threshold(request: float | None, tenant: float | None) -> float:
            own = TenantSettings(threshold=tenant) if tenant is not None else None
            asks = Asks(threshold=request)
            return queries.probes.probe(
                "default", key, None, own, CacheControl(), asks
            ).terms.radius

        assert threshold(None, None) == 0.3
        assert threshold(None, 0.2) == 0.2
        assert threshold(0.1, 0.2) == 0.1


def test_stored_entry_admits_only_inside_its_feedback_radius() -> None:
    entry = StoredEntry("e", "p", "r", 0.0, 0.0, 0.0, 0, 0, 0, feedback_radius=0.2)
    assert entry.admits(0.19) and not entry.admits(0.2) and not entry.admits(0.3)
    assert StoredEntry("e", "p", "r", 0.0, 0.0, 0.0, 0, 0, 0).admits(3.9)


def test_cache_control_parsing_and_freshness() -> None:
    control = parse_cache_control("no-store, max-age=60")
    assert control.no_store and not control.no_cache
    assert control.fresh_enough(59.9) and not control.fresh_enough(60.1)
    assert parse_cache_control("no-cache").no_cache
    assert parse_cache_control(None).fresh_enough(1e9)


async def test_a_hit_is_audited_by_sending_its_own_request_again_or_not_at_all(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    """The audit of a HIT sends what a MISS of the same lookup would have sent (the probe's
    replay), never a question of its own making; a lookup with nothing to replay is not
    audited, and is counted as such."""
    # the simulated LLM's answers are made up: audits of them only when a test allows it
    async with engine(
        redis_server, audit_rate=1.0, audit_max_per_s=100, audit_simulated=True
    ) as runtime:
        queries, auditor = runtime.queries, runtime.queries.outcomes.auditor
        assert auditor is not None
        await stored(queries, STORED, "Use the reset link.")
        sent: list[str] = []

        async def replay() -> LLMReply:
            sent.append("the served request")
            return LLMReply("Use the reset link.", 1.0, "", {"role": "assistant"})

        async def never() -> LLMReply:
            raise AssertionError("a HIT calls no LLM")

        hit = await queries.resolve(probe_for(queries, PARAPHRASE, replay=replay), never)
        assert hit.status == "HIT" and hit.distance
        await auditor.settle()
        assert sent == ["the served request"]
        other = await queries.resolve(probe_for(queries, "How could I reset my password?"), never)
        assert other.status == "HIT" and other.distance
        await auditor.settle()
        skipped = runtime.telemetry.metrics.registry.get_sample_value(
            "dynacache_audits_skipped_total", {"reason": "unreplayable"}
        )
        assert skipped == 1 and sent == ["the served request"]
