"""Bulk warm-up, delete by id, namespace flush."""

from collections.abc import Callable

import pytest
import redis

from index.store import keys
from tests.conftest import ON_CLUSTER
from tests.helpers import CacheService, wait_until
from tests.test_tenants import ADMIN, admin_headers, ask, make_tenant

WARM = [
    {"prompt": "What is the capital of France?", "response": "Paris."},
    {"prompt": "Who wrote Hamlet?", "response": "Shakespeare.", "ttl": 60},
    {"prompt": "What is the boiling point of water?", "response": "100 °C", "model": "m1"},
]


def test_bulk_entries_are_served_without_the_llm(
    service: CacheService, redis_client: redis.Redis
) -> None:
    response = service.http.post("/v1/entries", json={"entries": WARM})
    assert response.status_code == 201
    body = response.json()
    assert body["stored"] == 3
    assert [e["prompt"] for e in body["entries"]] == [e["prompt"] for e in WARM]
    hamlet = keys.entry_key("default", body["entries"][1]["entry_id"])
    assert 0 < redis_client.ttl(hamlet) <= 60
    hit = service.query("Tell me the capital of France", cache="only").json()
    assert hit == {**hit, "status": "HIT", "response": "Paris."}
    # the model is part of the scope
    assert (
        service.query("What is the boiling point of water?", cache="only").json()["status"]
        == "MISS"
    )
    assert (
        service.query("What is the boiling point of water?", model="m1", cache="only").json()[
            "response"
        ]
        == "100 °C"
    )


def test_a_tenant_replaces_a_live_answer_only_with_overwrite(
    start_service: Callable[..., CacheService],
) -> None:
    service = start_service(admin_token=ADMIN)
    alice = {"Authorization": f"Bearer {make_tenant(service, 'alice')}"}
    question = {"prompt": "What is the capital of Australia?", "response": "Canberra."}
    first = service.http.post("/v1/entries", headers=alice, json={"entries": [question]})
    entry_id = first.json()["entries"][0]["entry_id"]
    # the same answer again changes nothing: a resend is let through
    again = service.http.post("/v1/entries", headers=alice, json={"entries": [question]})
    assert again.status_code == 201 and again.json()["entries"][0]["entry_id"] == entry_id

    wrong = {**question, "response": "Sydney."}
    batch = [{"prompt": "Who painted the Mona Lisa?", "response": "Leonardo."}, wrong]
    refused = service.http.post("/v1/entries", headers=alice, json={"entries": batch})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "entry_exists" and entry_id in error["message"]
    assert "entries[1]" in error["message"]
    key = alice["Authorization"].removeprefix("Bearer ")
    assert ask(service, key, question["prompt"]).json()["response"] == "Canberra."
    assert ask(service, key, batch[0]["prompt"], cache="only").json()["status"] == "MISS"

    replaced = service.http.post(
        "/v1/entries", headers=alice, json={"entries": [wrong], "overwrite": True}
    )
    assert replaced.status_code == 201 and replaced.json()["entries"][0]["entry_id"] == entry_id
    assert ask(service, key, question["prompt"]).json()["response"] == "Sydney."
    # the admin token replaces its namespace's answers without asking
    for answer in ("Canberra.", "Canberra, ACT."):
        admin = {"entries": [{**question, "response": answer}]}
        stored = service.http.post("/v1/entries", headers=admin_headers(), json=admin)
        assert stored.status_code == 201, stored.text


def test_a_created_time_is_not_taken_from_a_client(service: CacheService) -> None:
    future = {**WARM[0], "created": 4102444800}  # 2100-01-01
    refused = service.http.post("/v1/entries", json={"entries": [future]})
    assert refused.status_code == 422 and "created" in refused.json()["error"]["message"]
    assert service.query(WARM[0]["prompt"], cache="only").json()["status"] == "MISS"


def test_delete_entry(service: CacheService, redis_client: redis.Redis) -> None:
    stored = service.http.post("/v1/entries", json={"entries": WARM[:1]}).json()
    entry_id = stored["entries"][0]["entry_id"]
    deleted = service.http.delete(f"/v1/entries/{entry_id}")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1}
    assert entry_id not in service.runtime.index
    assert not list(redis_client.scan_iter(match="dc:x:*"))  # the exact pointer went too
    assert service.query("What is the capital of France?", cache="only").json()["status"] == "MISS"
    again = service.http.delete(f"/v1/entries/{entry_id}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "entry_not_found"
    assert service.http.delete("/v1/entries/not-an-id").status_code == 404


def test_flush_namespace(service: CacheService, redis_client: redis.Redis) -> None:
    service.http.post("/v1/entries", json={"entries": WARM})
    flushed = service.http.delete("/v1/namespaces/default")
    assert flushed.status_code == 200 and flushed.json() == {"deleted": 3}
    assert len(service.runtime.index) == 0
    assert not list(redis_client.scan_iter(match="dc:[ex]:*"))
    assert service.query("Who wrote Hamlet?", cache="only").json()["status"] == "MISS"
    assert service.http.delete("/v1/namespaces/someone-else").status_code == 404
    assert service.http.delete("/v1/namespaces/bad%20name").status_code == 422


def test_bulk_limit(start_service) -> None:  # type: ignore[no-untyped-def]
    service = start_service(max_bulk_entries=2)
    response = service.http.post("/v1/entries", json={"entries": WARM})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_entries"


@pytest.mark.skipif(ON_CLUSTER, reason="the global sequence was only ever on one Redis")
def test_an_upgrade_from_the_global_sequence_continues_above_it(
    start_service: Callable[..., CacheService], redis_client: redis.Redis
) -> None:
    first = start_service()
    entry_id = first.query("What is the capital of France?").json()["entry_id"]
    # Redis as the release before per-namespace sequences left it: one global dc:seq, and
    # entries carrying numbers from it
    redis_client.delete(keys.sequence_key("default"))
    redis_client.set(keys.LEGACY_SEQUENCE, 900)
    redis_client.hset(keys.entry_key("default", entry_id), "seq", 900)
    second = start_service()  # a replica of the new release starting
    assert int(redis_client.get(keys.sequence_key("default")) or 0) == 900
    assert not redis_client.exists(keys.LEGACY_SEQUENCE)
    # the namespace's next change is numbered above its old entries, so a replica applying
    # it does not take it for an older one
    deleted = second.http.delete(f"/v1/entries/{entry_id}")
    assert deleted.status_code == 200
    assert int(redis_client.get(keys.sequence_key("default")) or 0) == 901
    wait_until(
        lambda: (
            first.query("What is the capital of France?", cache="only").json()["status"] == "MISS"
        ),
        5,
        message="the delete applied on the other replica",
    )


def test_the_read_script_reads_the_fields_a_hit_serves() -> None:
    """read_entry.lua names its fields itself (packing them per HIT cost more than the read):
    they must stay the ones records.py decodes, in its order."""
    import re

    from index.store.records import SERVE_FIELDS
    from index.store.scripts import lua_source

    hmget = re.search(r"HMGET', key,(.*?)\)", lua_source("read_entry"), re.DOTALL)
    assert hmget is not None
    assert tuple(re.findall(r"'(\w+)'", hmget.group(1))) == SERVE_FIELDS
