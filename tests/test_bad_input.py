"""Bad input gets a clear 4xx in the one error shape, stores nothing and counts nothing."""

import json
from typing import Any

import pytest
import redis

from index.store import keys
from tests.helpers import CacheService


def json_bytes(value: Any) -> bytes:
    """JSON as Python writes it (orjson refuses integers past 64 bits: the point here)."""
    return json.dumps(value).encode()


BAD_QUERIES: list[tuple[str, Any, int, str]] = [
    ("empty prompt", {"prompt": ""}, 422, "invalid_request"),
    ("ttl beyond ten years", {"prompt": "hi there", "ttl": 10**20}, 422, "invalid_request"),
    ("whitespace prompt", {"prompt": " \n\t "}, 422, "empty_prompt"),
    ("prompt over the limit", {"prompt": "x" * 32_001}, 422, "prompt_too_long"),
    ("threshold zero", {"prompt": "hi there", "threshold": 0}, 422, "invalid_request"),
    ("threshold above 4", {"prompt": "hi there", "threshold": 4.5}, 422, "invalid_request"),
    ("negative threshold", {"prompt": "hi there", "threshold": -1}, 422, "invalid_request"),
    ("negative ttl", {"prompt": "hi there", "ttl": -5}, 422, "invalid_request"),
    ("unknown cache mode", {"prompt": "hi there", "cache": "sometimes"}, 422, "invalid_request"),
    ("unknown field", {"prompt": "hi there", "temperature_x": 1}, 422, "invalid_request"),
    ("missing prompt", {}, 422, "invalid_request"),
    ("prompt not a string", {"prompt": 42}, 422, "invalid_request"),
]


def nothing_changed(client: redis.Redis) -> bool:
    stored = list(client.scan_iter(match=keys.entry_pattern()))
    counted = list(client.scan_iter(match=keys.stats_pattern()))
    return not stored and not counted


@pytest.mark.parametrize(
    ("case", "body", "status", "code"), BAD_QUERIES, ids=[case[0] for case in BAD_QUERIES]
)
def test_bad_query(
    service: CacheService, redis_client: redis.Redis, case: str, body: Any, status: int, code: str
) -> None:
    response = service.http.post("/v1/query", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert nothing_changed(redis_client)


def test_malformed_json(service: CacheService, redis_client: redis.Redis) -> None:
    response = service.http.post(
        "/v1/query", content=b'{"prompt": "hi', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert nothing_changed(redis_client)


def test_lone_surrogate_is_refused(service: CacheService, redis_client: redis.Redis) -> None:
    # valid JSON, but not text that can be stored as UTF-8
    response = service.http.post(
        "/v1/query",
        content=b'{"prompt": "hi \\ud800 there"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert nothing_changed(redis_client)


def test_bad_bulk_entry_stores_none_of_the_batch(
    service: CacheService, redis_client: redis.Redis
) -> None:
    response = service.http.post(
        "/v1/entries",
        json={
            "entries": [
                {"prompt": "A fine question", "response": "A fine answer"},
                {"prompt": "   ", "response": "nothing"},
            ]
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_prompt"
    assert "entries[1]" in response.json()["error"]["message"]
    assert nothing_changed(redis_client)


def test_unknown_route_and_method_use_the_error_shape(service: CacheService) -> None:
    missing = service.http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = service.http.get("/v1/query")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"a": value}
    return value


CHAT = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
HOSTILE_CHATS: list[tuple[str, bytes]] = [
    # each answered 500 and dropped the connection
    ("seed past 64 bits", json_bytes({**CHAT, "seed": 2**64})),
    ("max_tokens past 64 bits", json_bytes({**CHAT, "max_tokens": 2**70})),
    ("extra parameter past 64 bits", json_bytes({**CHAT, "logit_bias": {"50256": 10**30}})),
    ("extra parameter 300 deep", json_bytes({**CHAT, "metadata": nested(300)})),
    ("lone surrogate in content", b'{"model": "m", "messages": [{"role": "user", '
                                  b'"content": "hi \\ud800 there"}]}'),
    ("lone surrogate in a name", b'{"model": "m", "messages": [{"role": "user", '
                                 b'"content": "hi", "name": "\\udfff"}]}'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), HOSTILE_CHATS, ids=[c[0] for c in HOSTILE_CHATS])
def test_hostile_chat_bodies_get_a_4xx_not_a_500(
    service: CacheService, redis_client: redis.Redis, case: str, body: bytes
) -> None:
    response = service.http.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert response.json()["error"]["code"] and response.json()["error"]["message"]
    assert nothing_changed(redis_client)


def test_json_nested_past_the_parser_is_a_4xx(service: CacheService) -> None:
    body = b'{"model": "m", "messages": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for path in ("/v1/chat/completions", "/v1/query"):
        response = service.http.post(path, content=body,
                                     headers={"content-type": "application/json"})  # fmt: skip
        assert 400 <= response.status_code < 500, (path, response.status_code)
    assert service.http.get("/healthz").status_code == 200


@pytest.mark.parametrize("prompt", ["\x00\x00\x00", "\u200b\u200c\u200d", "\ufeff \u2060\n"])
def test_prompts_with_nothing_to_read_are_refused(
    service: CacheService, redis_client: redis.Redis, prompt: str
) -> None:
    response = service.query(prompt)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_prompt"
    stored = service.http.post(
        "/v1/entries", json={"entries": [{"prompt": prompt, "response": "x"}]}
    )
    assert stored.status_code == 422
    assert nothing_changed(redis_client)


def test_a_response_over_the_limit_is_refused(
    start_service: Any, redis_client: redis.Redis
) -> None:
    service = start_service(max_response_chars=1000)
    entry = {"prompt": "A fine question", "response": "x" * 1001}
    response = service.http.post("/v1/entries", json={"entries": [entry]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "response_too_long"
    assert nothing_changed(redis_client)
