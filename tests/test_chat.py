"""/v1/chat/completions through the official ``openai`` package, against a fake upstream
HTTP server on 127.0.0.1: MISS then HIT, streamed and not, scoping, stream failures."""

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import redis
from openai import OpenAI

from index.store import keys
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService, wait_until

QUESTION = "What is the capital of France?"
PARAPHRASE = "Tell me the capital of France"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def client(proxied: CacheService) -> Iterator[OpenAI]:
    sdk = OpenAI(base_url=f"{proxied.url}/v1", api_key="sk-anything", max_retries=0, timeout=30)
    yield sdk
    sdk.close()


def ask(client: OpenAI, content: str, **params: Any) -> Any:
    """A chat completion and its HTTP response (for the cache headers)."""
    messages = params.pop("messages", None) or [{"role": "user", "content": content}]
    raw = client.chat.completions.with_raw_response.create(
        model=params.pop("model", "fake-model"), messages=messages, **params
    )
    return raw.parse(), raw.headers


def stream(client: OpenAI, content: str, **params: Any) -> tuple[list[Any], httpx.Headers]:
    messages = params.pop("messages", None) or [{"role": "user", "content": content}]
    with client.chat.completions.with_streaming_response.create(
        model="fake-model", messages=messages, stream=True, **params
    ) as response:
        return list(response.parse()), response.headers


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def stored(redis_client: redis.Redis) -> int:
    return len(list(redis_client.scan_iter(match=keys.entry_pattern())))


def test_miss_then_paraphrase_hits_with_the_openai_shape(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    miss, miss_headers = ask(client, QUESTION)
    assert miss_headers["x-cache"] == "MISS"
    assert miss.choices[0].message.content == f"Upstream says: {QUESTION}"
    assert miss.id == "chatcmpl-1"  # the upstream's answer, unchanged
    hit, hit_headers = ask(client, PARAPHRASE)
    assert hit_headers["x-cache"] == "HIT"
    assert float(hit_headers["x-cache-similarity"]) > 0.82
    assert hit_headers["x-cache-entry"]
    assert hit.object == "chat.completion"
    assert hit.choices[0].message.content == miss.choices[0].message.content
    assert hit.choices[0].finish_reason == "stop"
    assert hit.usage is not None and hit.usage.total_tokens == 10
    assert hit.id != miss.id
    assert len(upstream.requests) == 1


def test_streamed_miss_then_streamed_and_plain_hits_agree(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    chunks, headers = stream(client, QUESTION, stream_options={"include_usage": True})
    assert headers["x-cache"] == "MISS"
    assert text_of(chunks).strip() == f"Upstream says: {QUESTION}"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    plain, plain_headers = ask(client, PARAPHRASE)
    assert plain_headers["x-cache"] == "HIT"
    replayed, replay_headers = stream(client, QUESTION, stream_options={"include_usage": True})
    assert replay_headers["x-cache"] == "HIT"
    assert text_of(replayed) == plain.choices[0].message.content
    assert replayed[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in replayed if c.choices and c.choices[0].delta.content) >= 3
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
    assert replayed[-1].usage is not None and replayed[-1].usage.total_tokens == 12
    without_usage, _ = stream(client, PARAPHRASE)
    assert all(c.usage is None for c in without_usage)
    assert len(upstream.requests) == 1


def test_stream_is_relayed_as_it_arrives(client: OpenAI, upstream: FakeUpstream) -> None:
    """The first chunk reaches the client while the upstream still holds the rest back."""
    upstream.plan.append("gated")
    with client.chat.completions.with_streaming_response.create(
        model="fake-model", messages=[{"role": "user", "content": QUESTION}], stream=True
    ) as response:
        chunks = iter(response.parse())
        first = next(chunks)
        assert first.choices[0].delta.role == "assistant"
        assert upstream.streams_finished == 0
        upstream.release()
        rest = list(chunks)
    assert text_of(rest).strip() == f"Upstream says: {QUESTION}"


def test_client_disconnect_mid_stream_stores_nothing(
    client: OpenAI, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.append("gated")
    with client.chat.completions.with_streaming_response.create(
        model="fake-model", messages=[{"role": "user", "content": QUESTION}], stream=True
    ) as response:
        next(iter(response.parse()))
    # the client has gone: the cache closes its upstream stream, which never finishes
    wait_until(lambda: upstream.streams_abandoned == 1, 10, message="upstream stream closed")
    upstream.release()
    assert upstream.streams_finished == 0
    assert stored(redis_client) == 0
    _, headers = ask(client, QUESTION)
    assert headers["x-cache"] == "MISS"


@pytest.mark.parametrize("failure", ["drop", "error"])
def test_upstream_failure_mid_stream_is_an_error_event_and_stores_nothing(
    client: OpenAI, upstream: FakeUpstream, redis_client: redis.Redis, failure: str
) -> None:
    upstream.plan.append(failure)
    received: list[Any] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": QUESTION}], stream=True
        ):
            received.append(chunk)
    assert received, "the chunks before the failure were relayed"
    assert stored(redis_client) == 0
    _, headers = ask(client, QUESTION)
    assert headers["x-cache"] == "MISS"


def test_upstream_failure_before_the_stream_is_an_http_error(
    client: OpenAI, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.extend(["500"])
    with pytest.raises(openai.APIStatusError) as raised:
        stream(client, QUESTION)
    assert raised.value.status_code == 502
    assert stored(redis_client) == 0


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_call_answers_round_trip(
    client: OpenAI, upstream: FakeUpstream, streamed: bool
) -> None:
    upstream.plan.append("tool")
    params: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if streamed:
        _, headers = stream(client, "What's the weather in Paris?", **params)
        assert headers["x-cache"] == "MISS"
    else:
        miss, headers = ask(client, "What's the weather in Paris?", **params)
        assert headers["x-cache"] == "MISS"
        assert miss.choices[0].message.tool_calls[0].function.name == "get_weather"
    hit, headers = ask(client, "What is the weather like in Paris?", **params)
    assert headers["x-cache"] == "HIT"
    assert hit.choices[0].finish_reason == "tool_calls"
    call = hit.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1", "get_weather", '{"city": "Paris"}',
    )  # fmt: skip
    replayed, headers = stream(client, "What is the weather like in Paris?", **params)
    assert headers["x-cache"] == "HIT"
    deltas = [c.choices[0].delta for c in replayed if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0].tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert len(upstream.requests) == 1


BASE: dict[str, Any] = {"messages": [{"role": "system", "content": "You are terse."},
                                     {"role": "user", "content": QUESTION}]}  # fmt: skip
SCOPE_CHANGES: dict[str, dict[str, Any]] = {
    "model": {"model": "other-model"},
    "system prompt": {
        "messages": [
            {"role": "system", "content": "You are verbose."},
            {"role": "user", "content": PARAPHRASE},
        ]
    },
    "earlier turns": {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "I am planning a trip to Germany."},
            {"role": "assistant", "content": "Nice."},
            {"role": "user", "content": PARAPHRASE},
        ]
    },
    "temperature": {"temperature": 0.2},
    "top_p": {"top_p": 0.5},
    "max_tokens": {"max_tokens": 5},
    "max_completion_tokens": {"max_completion_tokens": 5},
    "stop": {"stop": ["\n"]},
    "seed": {"seed": 7},
    "tools": {"tools": [WEATHER_TOOL]},
    "tool_choice": {"tools": [WEATHER_TOOL], "tool_choice": "none"},
    "response_format": {"response_format": {"type": "json_object"}},
}


@pytest.mark.parametrize("change", sorted(SCOPE_CHANGES))
def test_each_scope_difference_is_a_miss(
    client: OpenAI, upstream: FakeUpstream, change: str
) -> None:
    ask(client, "", **dict(BASE))
    if change == "tool_choice":  # tools alone are another scope: store that one first
        ask(client, "", **{**BASE, "tools": [WEATHER_TOOL]})
    paraphrased = {"messages": [*BASE["messages"][:1], {"role": "user", "content": PARAPHRASE}]}
    _, headers = ask(client, "", **dict(paraphrased))
    assert headers["x-cache"] == "HIT"
    changed = {**paraphrased, **SCOPE_CHANGES[change]}
    _, headers = ask(client, "", **changed)
    assert headers["x-cache"] == "MISS", change


def test_n_above_one_and_hot_temperature_bypass(client: OpenAI, upstream: FakeUpstream) -> None:
    ask(client, QUESTION)
    for params in ({"n": 2}, {"temperature": 1.5}):
        _, headers = ask(client, QUESTION, **params)
        assert headers["x-cache"] == "BYPASS"
    assert len(upstream.requests) == 3
    assert upstream.requests[1]["n"] == 2  # forwarded unchanged


def test_tool_call_ids_do_not_split_the_scope(client: OpenAI, upstream: FakeUpstream) -> None:
    """A retrieval tool's call ids are random per call; its results are what count."""

    def conversation(call_id: str, documents: str, question: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "search", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": documents},
        ]

    ask(client, "", messages=conversation("call_a", "Paris is the capital.", QUESTION))
    _, headers = ask(client, "", messages=conversation("call_b", "Paris is the capital.", QUESTION))
    assert headers["x-cache"] == "HIT"
    _, headers = ask(client, "", messages=conversation("call_c", "Lyon is large.", QUESTION))
    assert headers["x-cache"] == "MISS"


def test_query_endpoint_and_chat_share_a_bare_question(
    proxied: CacheService, client: OpenAI, upstream: FakeUpstream
) -> None:
    ask(client, QUESTION)
    answer = proxied.query(PARAPHRASE, model="fake-model").json()
    assert answer["status"] == "HIT"
    assert (
        proxied.query(PARAPHRASE, model="fake-model", context="Other docs").json()["status"]
        == "MISS"
    )


def test_bad_chat_requests_are_refused_with_the_error_shape(proxied: CacheService) -> None:
    for body in (
        {"model": "m", "messages": []},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "messages": [{"role": "wizard", "content": "hi"}]},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 9},
    ):
        response = proxied.http.post("/v1/chat/completions", json=body)
        assert response.status_code == 422, body
        assert set(response.json()["error"]) == {"code", "message"}


def test_concurrent_identical_chat_misses_make_one_upstream_call(
    client: OpenAI, upstream: FakeUpstream, proxied: CacheService
) -> None:
    upstream.plan.append("held")  # the leader's call waits until the others wait on it
    results: list[str] = []

    def one() -> None:
        _, headers = ask(client, QUESTION)
        results.append(headers["x-cache"])

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(upstream.requests) == 1, 30, message="the leader's call")
        wait_until(
            lambda: proxied.runtime.queries.coalescer.waiting == 3,
            30,
            message="3 chat requests waiting on the leader",
        )
        assert results == []  # all four in flight together
    finally:
        upstream.release()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["HIT", "HIT", "HIT", "MISS"]
    assert len(upstream.requests) == 1


def test_simulated_llm_streams_and_replays(service: CacheService) -> None:
    """With the simulated LLM (no upstream) a streamed miss is stored and replayed."""
    sdk = OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
    try:
        first, headers = stream(sdk, QUESTION)
        assert headers["x-cache"] == "MISS"
        assert QUESTION in text_of(first)
        again, headers = stream(sdk, PARAPHRASE)
        assert headers["x-cache"] == "HIT"
        assert text_of(again) == text_of(first)
    finally:
        sdk.close()
