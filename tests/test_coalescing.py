"""Concurrent identical misses make one LLM call, on one replica and across replicas."""

import asyncio
from collections.abc import Callable

import httpx

from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService


def proxied(start: Callable[..., CacheService], upstream: FakeUpstream) -> CacheService:
    return start(llm="openai", openai_base_url=upstream.base_url, llm_max_retries=0)


async def ask_all(urls: list[str], prompt: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(
            client.post(f"{urls[i % len(urls)]}/v1/query", json={"prompt": prompt})
            for i in range(count)
        ))  # fmt: skip


def test_identical_misses_on_one_replica_share_one_call(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    service = proxied(start_service, upstream)
    upstream.plan.append("slow:0.5")
    answers = asyncio.run(ask_all([service.url], "What is the capital of France?", 10))
    assert len(upstream.requests) == 1
    statuses = sorted(answer.json()["status"] for answer in answers)
    assert statuses == ["HIT"] * 9 + ["MISS"]
    assert len({answer.json()["response"] for answer in answers}) == 1
    assert len({answer.json()["entry_id"] for answer in answers}) == 1


def test_identical_misses_across_replicas_share_one_call(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    first, second = proxied(start_service, upstream), proxied(start_service, upstream)
    upstream.plan.append("slow:0.5")
    answers = asyncio.run(ask_all([first.url, second.url], "Who wrote Hamlet?", 8))
    assert len(upstream.requests) == 1
    assert [a.status_code for a in answers] == [200] * 8
    assert sum(a.json()["status"] == "MISS" for a in answers) == 1


def test_a_failed_leader_fails_its_local_followers_and_stores_nothing(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    service = proxied(start_service, upstream)
    upstream.plan.append("slow:0.5:500")
    answers = asyncio.run(ask_all([service.url], "What is the capital of Peru?", 5))
    assert len(upstream.requests) == 1
    assert [a.status_code for a in answers] == [502] * 5
    # the lock is gone: the next one leads again
    assert service.query("What is the capital of Peru?").json()["status"] == "MISS"
