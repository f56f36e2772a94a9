"""Concurrent identical misses make one LLM call, on one replica and across replicas.

The upstream holds the leader's call until the test has seen every other request waiting
on it (the coalescer's ``waiting`` count), so the requests provably overlapped: requests
that ran one after another would give the same answers, but never wait together."""

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService, wait_until


def proxied(start: Callable[..., CacheService], upstream: FakeUpstream) -> CacheService:
    return start(llm="openai", openai_base_url=upstream.base_url, llm_max_retries=0)


async def ask_all(urls: list[str], prompt: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(
            client.post(f"{urls[i % len(urls)]}/v1/query", json={"prompt": prompt})
            for i in range(count)
        ))  # fmt: skip


def asked_while_held(
    services: list[CacheService], upstream: FakeUpstream, prompt: str, count: int, then: str = ""
) -> list[httpx.Response]:
    """Send ``count`` identical queries round-robin; hold the upstream's one call until the
    other ``count - 1`` wait on it; then let it answer (``then``: what it answers)."""
    upstream.plan.append(f"held:{then}" if then else "held")
    with ThreadPoolExecutor(1) as pool:
        sent: Future[list[httpx.Response]] = pool.submit(
            asyncio.run, ask_all([s.url for s in services], prompt, count)
        )
        try:
            wait_until(lambda: len(upstream.requests) == 1, 30, message="the leader's call")
            wait_until(
                lambda: sum(s.runtime.queries.coalescer.waiting for s in services) == count - 1,
                30,
                message=f"{count - 1} requests waiting on the leader",
            )
            assert not sent.done()
        finally:
            upstream.release()
        return sent.result(timeout=60)


def test_identical_misses_on_one_replica_share_one_call(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    service = proxied(start_service, upstream)
    answers = asked_while_held([service], upstream, "What is the capital of France?", 10)
    assert len(upstream.requests) == 1
    statuses = sorted(answer.json()["status"] for answer in answers)
    assert statuses == ["HIT"] * 9 + ["MISS"]
    assert len({answer.json()["response"] for answer in answers}) == 1
    assert len({answer.json()["entry_id"] for answer in answers}) == 1


def test_identical_misses_across_replicas_share_one_call(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    first, second = proxied(start_service, upstream), proxied(start_service, upstream)
    answers = asked_while_held([first, second], upstream, "Who wrote Hamlet?", 8)
    assert len(upstream.requests) == 1
    assert [a.status_code for a in answers] == [200] * 8
    assert sum(a.json()["status"] == "MISS" for a in answers) == 1


def test_a_failed_leader_fails_its_local_followers_and_stores_nothing(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    service = proxied(start_service, upstream)
    answers = asked_while_held([service], upstream, "What is the capital of Peru?", 5, "500")
    assert len(upstream.requests) == 1
    assert [a.status_code for a in answers] == [502] * 5
    # the lock is gone: the next one leads again
    assert service.query("What is the capital of Peru?").json()["status"] == "MISS"
