"""Fixtures: one real Redis Stack per session (emptied before each test), services on demand."""

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from openai import OpenAI

from devtools.redis_cluster import EmbeddedCluster
from service.embedded_redis import EmbeddedRedis, free_port
from service.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# DYNACACHE_TEST_REDIS=cluster runs the tests against a Redis Cluster (3 primaries with a
# replica each) instead of one Redis (`make test-cluster`)
ON_CLUSTER = os.environ.get("DYNACACHE_TEST_REDIS") == "cluster"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis | EmbeddedCluster]:
    with tempfile.TemporaryDirectory(prefix="dc-redis-") as data_dir:
        server: EmbeddedRedis | EmbeddedCluster
        if ON_CLUSTER:
            server = EmbeddedCluster(Path(data_dir)).start()
        else:
            server = EmbeddedRedis(Path(data_dir), appendonly=False).start()
        yield server
        server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis | EmbeddedCluster) -> Iterator[redis.Redis]:
    client: redis.Redis
    if isinstance(redis_server, EmbeddedCluster):
        cluster = redis.RedisCluster(host="127.0.0.1", port=redis_server.nodes[0].port)
        cluster.flushall()  # every primary
        client = cluster  # type: ignore[assignment]
    else:
        client = redis.Redis(port=redis_server.port)
        client.flushall()
    yield client
    client.close()


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "redis_url": redis_url,
        "port": free_port(),
        "sim_latency_ms": 0,
        # a test machine under load (two cores, six cluster nodes, replicas in one process)
        # stalls a command past 0.5 s now and then: the breaker then opens and an admin or
        # entry call is a 503. Tests of timeouts and the breaker set their own.
        "redis_timeout_s": 2.0,
        "replica_id": f"test-{free_port()}",
        # the static threshold unless a test asks for a decision stage: tests of other
        # concerns must not depend on whether this clone has built the pair model yet
        "pair_model": "off",
        # in-process replicas share a working directory: no snapshots unless a test asks
        "index_snapshots": False,
        # no audits unless a test asks (tests/test_audits.py): one drawn at random would
        # be an extra upstream call in tests that count them
        "audit_rate": 0.0,
    }
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture
def start_service(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis
) -> Iterator[Callable[..., CacheService]]:
    """Start replicas against the session Redis; all are stopped at the end of the test."""
    started: list[CacheService] = []

    def start(wait_ready: bool = True, **overrides: Any) -> CacheService:
        overrides.setdefault("redis_url", redis_server.url)
        service = CacheService(make_settings(**overrides))
        started.append(service)
        return service.start(wait_ready=wait_ready)

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(start_service: Callable[..., CacheService]) -> CacheService:
    return start_service()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible upstream on 127.0.0.1."""
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def proxied(start_service: Callable[..., CacheService], upstream: FakeUpstream) -> CacheService:
    """A replica whose LLM is the fake upstream."""
    return start_service(
        llm="openai",
        openai_base_url=upstream.base_url,
        openai_api_key="sk-test-key",
        openai_model="fake-model",
        llm_timeout_s=1.0,
        llm_max_retries=2,
        llm_retry_backoff_s=0.01,
    )


@pytest.fixture
def both(start_service: Callable[..., CacheService], upstream: FakeUpstream) -> CacheService:
    """A replica whose OpenAI and Anthropic upstreams are the fake one."""
    return start_service(
        llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk-test",
        anthropic_base_url=upstream.base_url, anthropic_api_key="ak-test",
        llm_timeout_s=5.0, llm_max_retries=0,
    )  # fmt: skip


@pytest.fixture
def openai_sdk(both: CacheService) -> Iterator[OpenAI]:
    sdk = OpenAI(base_url=f"{both.url}/v1", api_key="sk-anything", max_retries=0, timeout=30)
    yield sdk
    sdk.close()
