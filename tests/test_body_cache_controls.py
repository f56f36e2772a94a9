"""LiteLLM's per-request cache controls (a ``cache`` object in the body, sent with the SDKs'
``extra_body``) in the three client APIs, against a real fake upstream: the object is taken
out before scoping and forwarding, and its controls are honoured."""

from typing import Any

import anthropic
import pytest
import redis
from openai import OpenAI, UnprocessableEntityError

from index.store import keys
from service.policy.body_cache_controls import take_body_cache_controls
from service.policy.cache_control import CacheControl
from service.policy.user_scope import EndUser
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService

QUESTION = "What is the capital of France?"
PARAPHRASE = "Tell me the capital of France"


def chat(sdk: OpenAI, text: str, cache: dict[str, Any] | None = None) -> str:
    extra = {"cache": cache} if cache is not None else None
    raw = sdk.chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": text}], extra_body=extra
    )
    return raw.headers["x-cache"]


def test_chat_controls_through_the_sdk(
    openai_sdk: OpenAI, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    assert chat(openai_sdk, QUESTION, {"ttl": 600}) == "MISS"
    assert "cache" not in upstream.requests[-1]  # not forwarded
    entry = next(redis_client.scan_iter(match=keys.entry_pattern()))
    assert 590 <= redis_client.ttl(entry) <= 600  # the ttl asked
    # not in the scope: the same question without the object is served the entry
    assert chat(openai_sdk, PARAPHRASE) == "HIT"
    assert chat(openai_sdk, PARAPHRASE, {"no-cache": True}) == "MISS"  # asked again, stored
    assert chat(openai_sdk, PARAPHRASE, {"s-maxage": 3600}) == "HIT"
    assert chat(openai_sdk, PARAPHRASE, {"s-maxage": 0}) == "MISS"  # nothing young enough
    calls = len(upstream.requests)
    assert chat(openai_sdk, "Who painted the Mona Lisa?", {"no-store": True}) == "MISS"
    assert chat(openai_sdk, "Who painted the Mona Lisa?") == "MISS"  # the first was not kept
    assert len(upstream.requests) == calls + 2
    # a cache namespace of its own: the default one's entries never serve it
    assert chat(openai_sdk, PARAPHRASE, {"namespace": "team-a"}) == "MISS"
    assert chat(openai_sdk, QUESTION, {"namespace": "team-a"}) == "HIT"
    assert chat(openai_sdk, QUESTION, {"namespace": "team-b"}) == "MISS"


def test_responses_and_messages_take_them_too(
    both: CacheService, openai_sdk: OpenAI, upstream: FakeUpstream
) -> None:
    first = openai_sdk.responses.with_raw_response.create(
        model="fake-model", input=QUESTION, extra_body={"cache": {"namespace": "r"}}
    )
    assert first.headers["x-cache"] == "MISS" and "cache" not in upstream.requests[-1]
    again = openai_sdk.responses.with_raw_response.create(
        model="fake-model", input=PARAPHRASE, extra_body={"cache": {"no-cache": True}}
    )
    assert again.headers["x-cache"] == "MISS"
    claude = anthropic.Anthropic(base_url=both.url, api_key="ak", max_retries=0, timeout=30)
    try:
        for expected, cache in (("MISS", {"ttl": 60}), ("HIT", None), ("MISS", {"no-cache": True})):
            raw = claude.messages.with_raw_response.create(
                model="claude-test", max_tokens=50,
                messages=[{"role": "user", "content": QUESTION}],
                extra_body={"cache": cache} if cache else None,
            )  # fmt: skip
            assert raw.headers["x-cache"] == expected
            assert "cache" not in upstream.requests[-1]
    finally:
        claude.close()


@pytest.mark.parametrize(
    "cache",
    [{"ttl": "soon"}, {"ttl": -1}, {"no-cache": "yes"}, {"namespace": ""}, {"namespace": "  "},
     {"namespace": "team\x1da"}, {"namespace": "n" * 129}, {"nocache": True}, {"s-maxage": 1.5},
     "no-cache"],
    ids=["ttl-text", "ttl-negative", "flag-text", "empty-namespace", "blank-namespace",
         "control-in-namespace", "long-namespace", "unknown", "float", "text"],
)  # fmt: skip
def test_bad_controls_are_422_naming_them(
    openai_sdk: OpenAI, upstream: FakeUpstream, cache: Any
) -> None:
    with pytest.raises(UnprocessableEntityError) as refused:
        chat(openai_sdk, QUESTION, cache)
    assert "cache" in str(refused.value)
    assert upstream.requests == []  # nothing reached the upstream


def test_a_namespace_is_trimmed_as_a_user_id_is(openai_sdk: OpenAI) -> None:
    assert chat(openai_sdk, QUESTION, {"namespace": " team-a "}) == "MISS"
    assert chat(openai_sdk, QUESTION, {"namespace": "team-a"}) == "HIT"  # the same one


def test_the_object_is_read_and_merged() -> None:
    body, asked = take_body_cache_controls({"model": "m", "cache": {"no-store": True, "ttl": 5}})
    assert body == {"model": "m"} and asked is not None
    assert asked.control == CacheControl(no_store=True) and asked.ttl == 5
    assert take_body_cache_controls({"model": "m"}) == ({"model": "m"}, None)
    assert EndUser(cache_namespace="x").partition != EndUser().partition == ""
    assert EndUser("user", "u", "x").partition != EndUser("user", "u").partition == "u"
