"""Per-end-user scope (opt-in): with ``user``, one end user's answers are never served to
another of the same tenant; with ``shared`` (the default) they are."""

from collections.abc import Callable

import pytest

from service.errors import InvalidInput
from service.policy.user_scope import EndUser, end_user
from service.schemas import TenantSettings
from tests.helpers import CacheService

ADMIN = "scope-admin-token"
PERSONAL = "What is my account balance?"
REWORDED = "What's my account balance?"


def test_mode_precedence_and_the_unknown_user() -> None:
    user_tenant = TenantSettings(scope_mode="user")
    assert end_user(None, None, "shared", "ann") == EndUser("shared", "ann")
    assert end_user(None, user_tenant, "shared", "ann").partition == "ann"
    assert end_user("shared", user_tenant, "shared", "ann").partition == ""  # the request wins
    assert end_user("user", None, "shared", "  ").unknown  # blank is no user
    # a mode in any case is that mode; an unknown one is refused, never the default
    assert end_user("User", None, "shared", "ann").partition == "ann"
    with pytest.raises(InvalidInput):
        end_user("nonsense", user_tenant, "shared", "ann")
    assert EndUser("shared", "ann").partition == ""


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
