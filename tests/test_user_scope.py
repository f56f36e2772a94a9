"""Per-end-user scope (opt-in): with ``user``, one end user's answers are never served to
another of the same tenant; with ``shared`` (the default) they are."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.errors import InvalidInput
from service.policy.user_scope import EndUser, ScopeAsked, end_user
from service.schemas import TenantSettings
from tests.fake_upstream import FakeUpstream
from tests.helpers import CacheService

ADMIN = "scope-admin-token"
PERSONAL = "What is my account balance?"
REWORDED = "What's my account balance?"


def test_mode_precedence_and_the_unknown_user() -> None:
    user_tenant = TenantSettings(scope_mode="user")
    assert end_user(ScopeAsked(body_user="ann"), None, "shared") == EndUser("shared", "ann")
    assert end_user(ScopeAsked(body_user="ann"), user_tenant, "shared").partition == "ann"
    shared = ScopeAsked(body_mode="shared", body_user="ann")
    assert end_user(shared, user_tenant, "shared").partition == ""  # the request wins
    assert end_user(ScopeAsked("user", body_user="  "), None, "shared").unknown  # blank: none
    # a mode in any case is that mode; an unknown one is refused, never the default
    assert end_user(ScopeAsked("User", body_user="ann"), None, "shared").partition == "ann"
    with pytest.raises(InvalidInput):
        end_user(ScopeAsked("nonsense", body_user="ann"), user_tenant, "shared")
    assert EndUser("shared", "ann").partition == ""


@pytest.mark.parametrize(
    ("asked", "authoritative", "expected"),
    [
        (ScopeAsked(header_mode="user", body_user="ann"), False, EndUser("user", "ann")),
        # marked personal one way and shared another: personal
        (ScopeAsked("shared", "user", "ann"), False, EndUser("user", "ann")),
        (ScopeAsked("user", "shared", "ann"), False, EndUser("user", "ann")),
        # the body's user, else the header's; with the header authoritative, the header's
        (ScopeAsked("user", body_user=" ann ", header_user="bob"), False, EndUser("user", "ann")),
        (ScopeAsked("user", body_user=" ", header_user="bob"), False, EndUser("user", "bob")),
        (ScopeAsked("user", body_user="ann", header_user="bob"), True, EndUser("user", "bob")),
        (ScopeAsked("user", body_user="ann"), True, EndUser("user", None)),
    ],
    ids=["header", "user-wins-over-shared", "user-wins-either-way", "body-user", "blank-body",
         "header-authoritative", "authoritative-without-header"],
)  # fmt: skip
def test_every_way_a_request_names_its_scope_and_user(
    asked: ScopeAsked, authoritative: bool, expected: EndUser
) -> None:
    assert end_user(asked, None, "shared", authoritative) == expected


@pytest.mark.parametrize(
    "asked",
    [ScopeAsked(body_user="a" * 257), ScopeAsked(header_user="a" * 257),
     ScopeAsked(body_user="ann\x1dcache-namespace\x1dx")],
    ids=["long-body-user", "long-header-user", "control-character"],
)  # fmt: skip
def test_a_user_id_past_its_bounds_is_refused(asked: ScopeAsked) -> None:
    with pytest.raises(InvalidInput):
        end_user(asked, None, "user")


@pytest.fixture
def secured(start_service: Callable[..., CacheService]) -> CacheService:
    return start_service(admin_token=ADMIN)


def tenant_key(service: CacheService, ns: str, scope_mode: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    tenant = {"namespace": ns, "settings": {"scope_mode": scope_mode}}
    created = service.http.post("/v1/admin/tenants", headers=admin, json=tenant)
    assert created.status_code == 201, created.text
    key = service.http.post(f"/v1/admin/tenants/{ns}/keys", headers=admin).json()["key"]
    return {"Authorization": f"Bearer {key}"}


def ask(service: CacheService, key: dict[str, str], prompt: str, user: str | None,
        **fields: object) -> dict:  # fmt: skip
    headers = {**key, **({"X-User-Id": user} if user else {})}
    answer = service.http.post("/v1/query", json={"prompt": prompt, **fields}, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict = answer.json()
    return body


def chat(service: CacheService, key: dict[str, str], prompt: str, user: str | None) -> str:
    body: dict = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if user:
        body["user"] = user  # OpenAI's end-user field
    answer = service.http.post("/v1/chat/completions", json=body, headers=key)
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Cache"]


def test_with_user_scope_two_users_never_share_a_personal_answer(secured: CacheService) -> None:
    key = tenant_key(secured, "bank", "user")
    assert ask(secured, key, PERSONAL, "ann")["status"] == "MISS"
    assert ask(secured, key, REWORDED, "ann")["status"] == "HIT"  # her own, reworded
    bob = ask(secured, key, PERSONAL, "bob")
    assert bob["status"] == "MISS"  # the same words: not Ann's answer
    assert ask(secured, key, REWORDED, "bob")["entry_id"] == bob["entry_id"]
    # chat: the "user" field partitions the same way
    assert chat(secured, key, "Which cards do I hold?", "ann") == "MISS"
    assert chat(secured, key, "Which cards do I hold?", "ann") == "HIT"
    assert chat(secured, key, "Which cards do I hold?", "bob") == "MISS"
    # no user named in user mode: nothing is cached, nothing is served
    assert ask(secured, key, PERSONAL, None)["status"] == "BYPASS"
    assert chat(secured, key, PERSONAL, None) == "BYPASS"
    # ... and "only" asks no LLM for it either
    only = ask(secured, key, PERSONAL, None, cache="only")
    assert only["status"] == "MISS" and only["response"] is None, only


def test_with_shared_scope_users_share_and_a_request_may_ask_for_its_own(
    secured: CacheService,
) -> None:
    key = tenant_key(secured, "faq", "shared")
    assert ask(secured, key, PERSONAL, "ann")["status"] == "MISS"
    assert ask(secured, key, REWORDED, "bob")["status"] == "HIT"  # shared: Ann's answer
    assert ask(secured, key, PERSONAL, None)["status"] == "HIT"
    # a request asking for user scope sees only its user's entries
    own = ask(secured, key, REWORDED, "bob", scope="user")
    assert own["status"] == "MISS"
    assert ask(secured, key, PERSONAL, "bob", scope="user")["status"] == "HIT"
    assert ask(secured, key, PERSONAL, "carl", scope="user")["status"] == "MISS"
    header = {**key, "X-User-Id": "ann", "X-Cache-Scope": "user"}
    body = {"model": "m", "messages": [{"role": "user", "content": PERSONAL}]}
    answer = secured.http.post("/v1/chat/completions", json=body, headers=header)
    assert answer.headers["X-Cache"] == "MISS"  # Ann's own, apart from the shared one


# each client API's request for a question (the end user comes from the user header)
API_BODIES: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "query": ("/v1/query", lambda q: {"prompt": q}),
    "chat": ("/v1/chat/completions",
             lambda q: {"model": "fake-model", "messages": [{"role": "user", "content": q}]}),
    "responses": ("/v1/responses", lambda q: {"model": "fake-model", "input": q}),
    "messages": ("/v1/messages", lambda q: {
        "model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": q}]
    }),
}  # fmt: skip
# each way the docs offer to mark a request personal: (headers, body fields)
PERSONAL_MARKS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "header": ({"X-Cache-Scope": "user"}, {}),
    "body": ({}, {"scope": "user"}),
}


def send(
    service: CacheService, api: str, prompt: str, headers: dict[str, str] | list[Any],
    **fields: Any,
) -> httpx.Response:  # fmt: skip
    path, body = API_BODIES[api]
    return service.http.post(path, json={**body(prompt), **fields}, headers=headers)


@pytest.mark.parametrize("mark", PERSONAL_MARKS)
@pytest.mark.parametrize("api", API_BODIES)
def test_every_way_to_mark_a_request_personal_works_on_every_api(
    both: CacheService, upstream: FakeUpstream, api: str, mark: str
) -> None:
    marked, fields = PERSONAL_MARKS[mark]

    def asks(user: str) -> str:
        answer = send(both, api, PERSONAL, {"X-User-Id": user, **marked}, **fields)
        assert answer.status_code == 200, answer.text
        return answer.headers["X-Cache"]

    assert asks("alice") == "MISS"
    assert asks("bob") == "MISS"  # never Alice's answer
    assert asks("alice") == "HIT"  # her own
    # the cache's own field is never forwarded as if it were a model parameter
    assert upstream.requests and all("scope" not in sent for sent in upstream.requests)


@pytest.mark.parametrize("scope", ["nonsense", 5, ["user"]], ids=["unknown", "number", "list"])
@pytest.mark.parametrize("api", [api for api in API_BODIES if api != "query"])
def test_a_bad_body_scope_is_refused_before_the_upstream(
    both: CacheService, upstream: FakeUpstream, api: str, scope: Any
) -> None:
    refused = send(both, api, PERSONAL, {"X-User-Id": "alice"}, scope=scope)
    assert refused.status_code == 422, refused.text
    assert upstream.requests == []


# each API's own end-user field in the body
BODY_USER: dict[str, Callable[[str], dict[str, Any]]] = {
    "query": lambda user: {"user": user},
    "chat": lambda user: {"user": user},
    "responses": lambda user: {"user": user},
    "messages": lambda user: {"metadata": {"user_id": user}},
}


@pytest.mark.parametrize("authoritative", [False, True], ids=["body-wins", "header-wins"])
@pytest.mark.parametrize("api", API_BODIES)
def test_an_operator_can_make_the_user_header_authoritative(
    start_service: Callable[..., CacheService], upstream: FakeUpstream, api: str,
    authoritative: bool,
) -> None:  # fmt: skip
    service = start_service(
        llm="openai", openai_base_url=upstream.base_url, anthropic_base_url=upstream.base_url,
        llm_max_retries=0, scope_mode="user", user_header_authoritative=authoritative,
    )  # fmt: skip
    bob = send(service, api, PERSONAL, {"X-User-Id": "bob"})
    assert bob.headers["X-Cache"] == "MISS"
    # a gateway names Alice in the header; her client's body names Bob
    alice = send(service, api, PERSONAL, {"X-User-Id": "alice"}, **BODY_USER[api]("bob"))
    assert alice.status_code == 200, alice.text
    assert alice.headers["X-Cache"] == ("MISS" if authoritative else "HIT")


@pytest.mark.parametrize("header", ["X-Cache-Scope", "X-User-Id"])
@pytest.mark.parametrize("api", API_BODIES)
def test_a_scope_or_user_header_given_twice_is_refused(
    both: CacheService, upstream: FakeUpstream, api: str, header: str
) -> None:
    given = {"X-Cache-Scope": ["user", "user"], "X-User-Id": ["alice", "bob"]}
    headers = [("X-Cache-Scope", "user"), ("X-User-Id", "alice")]
    headers = [(name, value) for name, value in headers if name != header]
    headers += [(header, value) for value in given[header]]
    refused = send(both, api, PERSONAL, headers)
    assert refused.status_code == 422, refused.text
    assert upstream.requests == []


@pytest.mark.parametrize("api", [api for api in API_BODIES if api != "messages"])
def test_an_end_user_id_is_capped_on_every_api(
    both: CacheService, upstream: FakeUpstream, api: str
) -> None:
    refused = send(both, api, PERSONAL, {"X-Cache-Scope": "user"}, user="u" * 257)
    assert refused.status_code == 422, refused.text
    too_long_header = send(both, api, PERSONAL, {"X-User-Id": "u" * 257})
    assert too_long_header.status_code == 422, too_long_header.text
    assert upstream.requests == []
