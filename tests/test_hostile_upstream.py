"""Hostile bodies through the three client APIs with a real upstream (the fake one on
127.0.0.1), not only the simulated LLM: what the proxy forwards must be JSON it can write.

NaN, Infinity and numbers past 1e308 parse (Python reads them as floats) but cannot be
written back: forwarded, they answered 500 (whole) or a 502 that blamed the upstream
(streamed). Each is a 422 naming the field now, with nothing sent upstream and nothing
stored. Loosely typed fields (``"stream": "yes"``, a text part whose text is a number) are
422s too, and per-user scope cannot be switched off by a misspelt header.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService
from tests.test_bad_input import nothing_changed


@pytest.fixture
def real(start_service: Callable[..., CacheService], upstream: FakeUpstream) -> CacheService:
    """A replica whose three APIs all go to the fake upstream."""
    return start_service(
        llm="openai", openai_base_url=upstream.base_url, openai_api_key="sk-test",
        openai_model="fake-model", anthropic_base_url=upstream.base_url,
        anthropic_api_key="ak-test", llm_timeout_s=2.0, llm_max_retries=0,
    )  # fmt: skip


QUESTION = "What is the capital of France?"


def _open(body: dict[str, Any]) -> str:
    """A body's JSON without its closing brace: hostile fields are written after it."""
    return json.dumps(body)[:-1]


BODIES: dict[str, tuple[str, str]] = {
    "chat": ("/v1/chat/completions",
             _open({"model": "m", "messages": [{"role": "user", "content": QUESTION}]})),
    "responses": ("/v1/responses", _open({"model": "m", "input": QUESTION})),
    "messages": ("/v1/messages", _open({"model": "m", "max_tokens": 50,
                                        "messages": [{"role": "user", "content": QUESTION}]})),
}  # fmt: skip
HOSTILE: list[tuple[str, str, str]] = [
    # case, the fields added, the field the 422 must name
    ("huge number", '"foo": 1e400', "foo"),
    ("NaN", '"foo": NaN', "foo"),
    ("Infinity", '"foo": -Infinity', "foo"),
    ("NaN in metadata", '"extra": {"a": NaN}', "extra.a"),
    ("tool schema maximum 1e400",
     '"tool_spec": [{"type": "function", "parameters": {"type": "object", "properties": '
     '{"x": {"type": "number", "maximum": 1e400}}}}]', "tool_spec[0].parameters"),
]  # fmt: skip


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("dialect", sorted(BODIES))
@pytest.mark.parametrize(("case", "fields", "named"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_non_finite_numbers_are_a_422_naming_the_field(
    real: CacheService, upstream: FakeUpstream, redis_client: redis.Redis,
    dialect: str, streamed: bool, case: str, fields: str, named: str,
) -> None:  # fmt: skip
    path, head = BODIES[dialect]
    stream = ', "stream": true' if streamed else ""
    body = f"{head}, {fields}{stream}}}"
    response = real.http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, (case, response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "number_out_of_range"
    assert named in error["message"], error["message"]
    assert upstream.requests == [], "nothing may be sent upstream"
    assert nothing_changed(redis_client)


def test_a_pass_through_with_n_above_one_refuses_nan_too(
    real: CacheService, upstream: FakeUpstream, redis_client: redis.Redis
) -> None:
    body = BODIES["chat"][1] + ', "n": 2, "logit_bias": {"50256": NaN}}'
    response = real.http.post("/v1/chat/completions", content=body,
                              headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert "logit_bias.50256" in response.json()["error"]["message"]
    assert upstream.requests == []


LOOSE: list[tuple[str, str, dict[str, Any]]] = [
    ("chat stream as text", "/v1/chat/completions",
     {"model": "m", "messages": [{"role": "user", "content": QUESTION}], "stream": "yes"}),
    ("chat text part with a number", "/v1/chat/completions",
     {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}),
    ("messages content a number", "/v1/messages",
     {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}),
    ("responses item without a role", "/v1/responses",
     {"model": "m", "input": [{"content": QUESTION}]}),
    ("responses input_text part with a list", "/v1/responses",
     {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": []}]}]}),
    ("messages metadata user_id a number", "/v1/messages",
     {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": QUESTION}],
      "metadata": {"user_id": 7}}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "path", "body"), LOOSE, ids=[c[0] for c in LOOSE])
def test_loosely_typed_fields_are_a_422(
    real: CacheService, upstream: FakeUpstream, redis_client: redis.Redis,
    case: str, path: str, body: dict[str, Any],
) -> None:  # fmt: skip
    response = real.http.post(path, json=body)
    assert response.status_code == 422, (case, response.status_code, response.text)
    assert response.json()["error"]["code"] == "invalid_request"
    assert upstream.requests == []
    assert nothing_changed(redis_client)


def test_an_unknown_scope_header_is_a_422_and_any_case_is_the_mode(
    real: CacheService, upstream: FakeUpstream
) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "What is my balance?"}]}
    refused = real.http.post("/v1/chat/completions", json={**chat, "user": "alice"},
                             headers={"X-Cache-Scope": "per-user"})  # fmt: skip
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_scope"
    # alice's answer, kept as hers (capital U)
    alice = real.http.post("/v1/chat/completions", json={**chat, "user": "alice"},
                           headers={"X-Cache-Scope": "User"})  # fmt: skip
    assert alice.headers["x-cache"] == "MISS"
    bob = real.http.post("/v1/chat/completions", json={**chat, "user": "bob"},
                         headers={"X-Cache-Scope": "USER"})  # fmt: skip
    assert bob.headers["x-cache"] == "MISS", "bob was served alice's answer"
    again = real.http.post("/v1/chat/completions", json={**chat, "user": "alice"},
                           headers={"X-Cache-Scope": "user"})  # fmt: skip
    assert again.headers["x-cache"] == "HIT"


def test_query_scope_in_any_case_is_the_mode(real: CacheService) -> None:
    question = "What is my account balance today?"
    alice = real.query(question, user="alice", scope="User")
    assert alice.status_code == 200 and alice.json()["status"] == "MISS"
    bob = real.query(question, user="bob", scope="USER")
    assert bob.json()["status"] == "MISS"


def test_anthropic_metadata_user_id_names_the_user(
    real: CacheService, upstream: FakeUpstream
) -> None:
    def ask(user: str) -> str:
        body = {
            "model": "m",
            "max_tokens": 50,
            "metadata": {"user_id": user},
            "messages": [{"role": "user", "content": "What is my next appointment?"}],
        }
        answer = real.http.post("/v1/messages", json=body, headers={"X-Cache-Scope": "user"})
        assert answer.status_code == 200, answer.text
        return str(answer.headers["x-cache"])

    assert ask("alice") == "MISS"  # cached for alice (it was a BYPASS: no user named)
    assert ask("alice") == "HIT"
    assert ask("bob") == "MISS"


def test_bodies_that_cannot_be_read_are_invalid_json(real: CacheService) -> None:
    deep = b'{"model": "m", "messages": [], "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    not_utf8 = b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    for body in (deep, not_utf8):
        response = real.http.post("/v1/chat/completions", content=body,
                                  headers={"content-type": "application/json"})  # fmt: skip
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_json"


def test_flushing_an_unknown_tenant_is_a_404(start_service: Callable[..., CacheService]) -> None:
    admin = start_service(admin_token="admin-secret")
    response = admin.http.delete(
        "/v1/admin/tenants/nosuch/entries", headers={"Authorization": "Bearer admin-secret"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"
