"""The Responses and Anthropic Messages APIs through the official ``openai`` and ``anthropic``
packages, against a fake upstream of each on 127.0.0.1: MISS then HIT, whole and streamed,
scoping, answers that are served but not kept."""

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
import redis
from openai import OpenAI

from index.store import keys
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService, wait_until

QUESTION = "What is the capital of France?"
PARAPHRASE = "Tell me the capital of France"
MODEL = "claude-test"


def stored(redis_client: redis.Redis) -> int:
    return len(list(redis_client.scan_iter(match=keys.entry_pattern())))


@pytest.fixture
def anthropic_sdk(both: CacheService) -> Iterator[anthropic.Anthropic]:
    sdk = anthropic.Anthropic(base_url=both.url, api_key="ak-anything", max_retries=0,
                              timeout=30)  # fmt: skip
    yield sdk
    sdk.close()


# -- Responses -----------------------------------------------------------------------


def respond(sdk: OpenAI, text: str, **params: Any) -> tuple[Any, Any]:
    raw = sdk.responses.with_raw_response.create(model="fake-model", input=text, **params)
    return raw.parse(), raw.headers


def test_responses_miss_then_paraphrase_hits(
    openai_sdk: OpenAI, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    miss, headers = respond(openai_sdk, QUESTION)
    assert headers["x-cache"] == "MISS"
    assert miss.output_text == f"Upstream says: {QUESTION}"
    assert miss.id == "resp_1"  # the upstream's answer, unchanged
    assert upstream.requests[-1]["input"] == QUESTION  # sent on in the Responses API
    hit, hit_headers = respond(openai_sdk, PARAPHRASE)
    assert hit_headers["x-cache"] == "HIT" and hit_headers["x-cache-entry"]
    assert hit.output_text == miss.output_text and hit.id != miss.id
    assert hit.status == "completed" and hit.usage.output_tokens == 7
    assert len(upstream.requests) == 1 and stored(redis_client) == 1
    # other instructions, or another output limit: another scope
    _, other = respond(openai_sdk, QUESTION, instructions="Answer in French.")
    assert other["x-cache"] == "MISS"
    _, limited = respond(openai_sdk, QUESTION, max_output_tokens=20)
    assert limited["x-cache"] == "MISS"


def test_responses_streamed_miss_then_streamed_hit(
    openai_sdk: OpenAI, upstream: FakeUpstream
) -> None:
    def streamed(text: str) -> tuple[list[Any], str]:
        with openai_sdk.responses.with_streaming_response.create(
            model="fake-model", input=text, stream=True
        ) as response:
            return list(response.parse()), response.headers["x-cache"]

    events, status = streamed(QUESTION)
    assert status == "MISS"
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.strip() == f"Upstream says: {QUESTION}"
    replayed, status = streamed(PARAPHRASE)
    assert status == "HIT"
    assert replayed[0].type == "response.created"
    assert replayed[-1].type == "response.completed"
    assert replayed[-1].response.output_text.strip() == f"Upstream says: {QUESTION}"
    assert "".join(e.delta for e in replayed if e.type == "response.output_text.delta").strip() \
        == f"Upstream says: {QUESTION}"  # fmt: skip
    sequence = [e.sequence_number for e in replayed]
    assert sequence == sorted(sequence)
    # a whole answer from what was streamed
    whole, headers = respond(openai_sdk, QUESTION)
    assert headers["x-cache"] == "HIT" and whole.output_text.strip() == text.strip()
    assert len(upstream.requests) == 1


def test_responses_with_a_function_call_are_kept_as_one(
    openai_sdk: OpenAI, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.append("tool")
    answer, headers = respond(openai_sdk, "What is the weather in Paris?")
    assert headers["x-cache"] == "MISS"
    assert [item.type for item in answer.output] == ["message", "function_call"]
    assert stored(redis_client) == 1
    again, headers = respond(openai_sdk, "What's the weather in Paris?")
    assert headers["x-cache"] == "HIT"
    assert [item.type for item in again.output] == ["message", "function_call"]
    call = again.output[1]
    assert (call.name, call.call_id, call.arguments) == ("get_weather", "call_1", "{}")


# -- Anthropic Messages -----------------------------------------------------------------


def ask(sdk: anthropic.Anthropic, text: str, **params: Any) -> tuple[Any, Any]:
    raw = sdk.messages.with_raw_response.create(
        model=MODEL, max_tokens=params.pop("max_tokens", 100),
        messages=[{"role": "user", "content": text}], **params,
    )  # fmt: skip
    return raw.parse(), raw.headers


def test_messages_miss_then_paraphrase_hits(
    anthropic_sdk: anthropic.Anthropic, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    miss, headers = ask(anthropic_sdk, QUESTION)
    assert headers["x-cache"] == "MISS"
    assert miss.content[0].text.strip() == f"Upstream says: {QUESTION}"
    sent = upstream.headers[-1]
    assert sent["x-api-key"] == "ak-test" and sent["anthropic-version"]  # the upstream's key
    hit, hit_headers = ask(anthropic_sdk, PARAPHRASE)
    assert hit_headers["x-cache"] == "HIT"
    assert hit.content[0].text == miss.content[0].text and hit.id != miss.id
    assert hit.stop_reason == "end_turn" and hit.usage.output_tokens == 7
    assert len(upstream.requests) == 1 and stored(redis_client) == 1
    # another system prompt, stop sequence or token limit: another scope
    for params in ({"system": "You are terse."}, {"stop_sequences": ["END"]}, {"max_tokens": 50}):
        _, other = ask(anthropic_sdk, QUESTION, **params)
        assert other["x-cache"] == "MISS", params


def test_messages_streamed_miss_then_streamed_hit(
    anthropic_sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    def streamed(text: str) -> tuple[str, Any, str]:
        with anthropic_sdk.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": text}]
        ) as stream:
            text_received = "".join(stream.text_stream)
            final = stream.get_final_message()
            status = stream.response.headers["x-cache"]
        return text_received, final, status

    text, final, status = streamed(QUESTION)
    assert status == "MISS" and text.strip() == f"Upstream says: {QUESTION}"
    assert final.stop_reason == "end_turn"
    replayed, final_hit, status = streamed(PARAPHRASE)
    assert status == "HIT" and replayed.strip() == text.strip()
    assert final_hit.stop_reason == "end_turn" and final_hit.usage.output_tokens == 7
    assert len(upstream.requests) == 1


def test_messages_with_tool_use_are_served_not_kept(
    anthropic_sdk: anthropic.Anthropic, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    upstream.plan.append("tool")
    answer, headers = ask(anthropic_sdk, "What is the weather in Paris?")
    assert headers["x-cache"] == "MISS"
    assert [block.type for block in answer.content] == ["text", "tool_use"]
    assert stored(redis_client) == 0


def test_one_question_is_one_entry_across_the_three_apis(
    openai_sdk: OpenAI, anthropic_sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    """A bare question to one model: what one API stored, the others serve."""
    chat = openai_sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}]
    )
    assert chat.headers["x-cache"] == "MISS"
    raw = openai_sdk.responses.with_raw_response.create(model=MODEL, input=PARAPHRASE)
    assert raw.headers["x-cache"] == "HIT"
    assert raw.parse().output_text == f"Upstream says: {QUESTION}"
    messages = anthropic_sdk.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": PARAPHRASE}]
    )
    # max_tokens is an output limit, part of the scope: a MISS unless the chat had it too
    assert messages.headers["x-cache"] == "MISS"
    wait_until(lambda: len(upstream.requests) == 2, 5, message="two upstream calls")


def test_the_simulated_llm_answers_every_api(service: CacheService) -> None:
    sdk = OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
    claude = anthropic.Anthropic(base_url=service.url, api_key="unused", max_retries=0)
    try:
        first = sdk.responses.with_raw_response.create(model="m", input=QUESTION)
        assert first.headers["x-cache"] == "MISS" and QUESTION in first.parse().output_text
        again = sdk.responses.with_raw_response.create(model="m", input=QUESTION)
        assert again.headers["x-cache"] == "HIT"
        question = [{"role": "user", "content": QUESTION}]
        with claude.messages.stream(model="m", max_tokens=10, messages=question) as stream:
            assert QUESTION in "".join(stream.text_stream)
    finally:
        sdk.close()
        claude.close()
