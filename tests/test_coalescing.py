"""Concurrent identical misses make one LLM call, on one replica and across replicas.

The upstream holds the leader's call until the test has seen every other request waiting
on it (the coalescer's ``waiting`` count), so the requests provably overlapped: requests
that ran one after another would give the same answers, but never wait together."""

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

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


# -- streamed misses ---------------------------------------------------------------------


def streamed_text(url: str, prompt: str, results: list[tuple[str, str]],
                  leave: threading.Event | None = None) -> None:  # fmt: skip
    """One streamed chat request; appends (X-Cache, the text received) to ``results``.
    With ``leave``, the client takes the first chunk, then goes away once it is set."""
    body = {"model": "fake-model", "stream": True,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    text = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as answer:
        for line in answer.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                text.append(choice["delta"].get("content") or "")
            if leave is not None:
                leave.wait(30)
                break
        results.append((answer.headers["X-Cache"], "".join(text)))


def test_identical_streamed_misses_share_one_upstream_stream(
    start_service: Callable[..., CacheService], upstream: FakeUpstream, redis_client: Any
) -> None:
    service = proxied(start_service, upstream)
    upstream.plan.append("gated")  # the first chunk, then the rest once released
    results: list[tuple[str, str]] = []
    threads = [threading.Thread(target=streamed_text,
                                args=(service.url, "What is the capital of Peru?", results))
               for _ in range(5)]  # fmt: skip
    for thread in threads:
        thread.start()
    coalescer = service.runtime.queries.coalescer
    try:
        wait_until(lambda: len(upstream.requests) == 1, 30, message="the leader's call")
        wait_until(lambda: coalescer.stream_readers() == 5, 30,
                   message="five readers of the one upstream stream")  # fmt: skip
        assert results == []  # all five in flight together, reading as it arrives
    finally:
        upstream.release()
    for thread in threads:
        thread.join(30)
    assert len(upstream.requests) == 1
    assert sorted(status for status, _ in results) == ["HIT"] * 4 + ["MISS"]
    assert {text for _, text in results} == {"Upstream says: What is the capital of Peru? "}
    assert len(list(redis_client.scan_iter(match="dc:e:*"))) == 1


def test_a_shared_stream_goes_on_when_its_leader_leaves(
    start_service: Callable[..., CacheService], upstream: FakeUpstream, redis_client: Any
) -> None:
    service = proxied(start_service, upstream)
    upstream.plan.append("gated")
    prompt = "Who painted the ceiling of the Sistine Chapel?"
    leader: list[tuple[str, str]] = []
    follower: list[tuple[str, str]] = []
    leave = threading.Event()
    first = threading.Thread(target=streamed_text, args=(service.url, prompt, leader, leave))
    first.start()
    wait_until(lambda: len(upstream.requests) == 1, 30, message="the leader's call")
    second = threading.Thread(target=streamed_text, args=(service.url, prompt, follower))
    second.start()
    coalescer = service.runtime.queries.coalescer
    wait_until(lambda: coalescer.stream_readers() == 2, 30, message="leader and follower read")
    leave.set()  # the leader's client took the first chunk and leaves
    first.join(30)
    wait_until(lambda: coalescer.stream_readers() == 1, 30, message="the leader gone")
    upstream.release()
    second.join(30)
    assert follower == [("HIT", f"Upstream says: {prompt} ")]
    assert upstream.streams_finished == 1 and upstream.streams_abandoned == 0
    wait_until(lambda: len(list(redis_client.scan_iter(match="dc:e:*"))) == 1, 10,
               message="the answer kept")  # fmt: skip


def test_a_streamed_miss_on_another_replica_replays_the_leaders_answer(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    first, second = proxied(start_service, upstream), proxied(start_service, upstream)
    upstream.plan.append("gated")
    prompt = "What is the tallest mountain in Africa?"
    on_first: list[tuple[str, str]] = []
    on_second: list[tuple[str, str]] = []
    leading = threading.Thread(target=streamed_text, args=(first.url, prompt, on_first))
    leading.start()
    wait_until(lambda: len(upstream.requests) == 1, 30, message="the leader's call")
    waiting = threading.Thread(target=streamed_text, args=(second.url, prompt, on_second))
    waiting.start()
    wait_until(lambda: second.runtime.queries.coalescer.waiting == 1, 30,
               message="the other replica waits on the leader's lock")  # fmt: skip
    upstream.release()
    leading.join(30)
    waiting.join(30)
    assert len(upstream.requests) == 1
    assert on_first == [("MISS", f"Upstream says: {prompt} ")]
    assert on_second[0][0] == "HIT" and on_second[0][1].strip() == f"Upstream says: {prompt}"


async def test_a_reader_joining_an_abandoned_stream_is_told_not_left_waiting() -> None:
    from service.engine.shared_stream import SharedStream

    shared = SharedStream()
    shared.publish({"choices": [{"delta": {"content": "Hel"}}]})

    async def pump() -> None:  # an upstream that would go on for ever
        await asyncio.Event().wait()

    shared.task = asyncio.create_task(pump())
    first = shared.follow()
    assert (await anext(first))["choices"][0]["delta"]["content"] == "Hel"
    await first.aclose()  # the only reader leaves: the upstream is closed
    with contextlib.suppress(asyncio.CancelledError):
        await shared.task
    late = [chunk async for chunk in _until_error(shared)]
    assert late == ["Hel", "error: the stream was abandoned by its readers"]


async def _until_error(shared: Any) -> Any:
    try:
        async for chunk in shared.follow():
            yield chunk["choices"][0]["delta"]["content"]
    except Exception as error:
        yield f"error: {error}"


def test_a_dead_leaders_lock_holds_others_back_one_lock_life_only(
    start_service: Callable[..., CacheService], upstream: FakeUpstream, redis_client: Any
) -> None:
    from index.store import keys
    from service.keying.normalise import normalise_prompt, scope_of

    service = start_service(llm="openai", openai_base_url=upstream.base_url,
                            llm_max_retries=0, coalesce_lock_life_s=0.5)  # fmt: skip
    prompt = "What is the speed of light in a vacuum?"
    exact = keys.exact_key("default", scope_of(None), normalise_prompt(prompt))
    # a replica that took the lock and died: nobody renews it, it lapses after its life
    redis_client.set(keys.lock_key(exact), "dead-leader", px=500)
    # the deadline is the assertion: the 30 s wait would fail it as a read timeout
    answer = service.http.post("/v1/query", json={"prompt": prompt}, timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "MISS"
    assert len(upstream.requests) == 1


def test_a_live_leader_renews_its_lock_past_its_life(
    start_service: Callable[..., CacheService], upstream: FakeUpstream
) -> None:
    settings = {"llm": "openai", "openai_base_url": upstream.base_url, "llm_max_retries": 0,
                "coalesce_lock_life_s": 0.3}  # fmt: skip
    first, second = start_service(**settings), start_service(**settings)
    # the leader's call is held well past three lock lives: renewed, the lock keeps the
    # other replica waiting instead of calling the LLM itself
    upstream.plan.append("slow:1.5")
    answers = asyncio.run(ask_all([first.url, second.url], "Who discovered penicillin?", 2))
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["status"] for a in answers) == ["HIT", "MISS"]
    assert len(upstream.requests) == 1
