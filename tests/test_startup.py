"""Start-up at scale (issue 19): a restarted replica loads its index snapshot and catches
up from Redis; a new one is ready on flat sub-indexes, serves what has outgrown flat search
from Redis's HNSW mirror, and builds its own HNSW in the background. Real processes."""

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from devtools.nginx_lb import NginxLB, nginx_binary
from devtools.redis_cluster import EmbeddedCluster
from devtools.replica_process import ROOT, ServiceProcess
from service.embedded_redis import EmbeddedRedis
from tests.helpers import wait_until

COMMON = {"sim_latency_ms": 0, "embed_threads": 1, "drift_check_interval_s": 60}
QUESTIONS = [f"What is the boiling point of liquid number {n} at sea level?" for n in range(40)]


def replica(redis_url: str, snapshots: Path, **settings: Any) -> ServiceProcess:
    return ServiceProcess(
        redis_url, index_snapshot_dir=str(snapshots), **{**COMMON, **settings}
    ).__enter__()


def hit(service: ServiceProcess, question: str) -> bool:
    return bool(service.query(question, cache="only").json()["status"] == "HIT")


def served(service: ServiceProcess, question: str) -> str | None:
    """The entry a lookup is answered with, None on a MISS."""
    answer = service.query(question, cache="only").json()
    return str(answer["entry_id"]) if answer["status"] == "HIT" else None


def test_a_restarted_replica_loads_its_snapshot_then_catches_up(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    first = replica(redis_server.url, tmp_path / "a")
    ids = first.store([{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(QUESTIONS)])
    first.stop()  # a clean stop writes the snapshot
    assert (tmp_path / "a" / "current" / "manifest.json").exists()

    # while it is down, another replica adds, deletes, and a namespace appears
    other = replica(redis_server.url, tmp_path / "b")
    try:
        added = other.store([{"prompt": "Which planet has the most moons?", "response": "x"}])
        for entry_id in ids[:5]:
            assert other.http.delete(f"/v1/entries/{entry_id}").status_code == 200
    finally:
        other.stop()

    restarted = replica(redis_server.url, tmp_path / "a", log_level="info")
    try:
        view = restarted.view(ids=True)
        assert view["snapshot"]["restored"]["entries"] == len(QUESTIONS)
        assert view["rebuilds"] == 0  # no load of every entry from Redis
        assert set(view["entry_ids"]) == (set(ids[5:]) | set(added))
        assert served(restarted, "Which planet has the most moons ?") == added[0]
        for deleted in range(5):  # never served: deleted while it was down
            assert served(restarted, QUESTIONS[deleted].replace("?", " ?")) not in ids[:5]
        assert served(restarted, QUESTIONS[10].replace("?", " ?")) == ids[10]
        assert "index snapshot loaded" in restarted.log()
    finally:
        restarted.stop()


def test_a_corrupt_snapshot_is_ignored_and_the_replica_rebuilds(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    first = replica(redis_server.url, tmp_path)
    first.store([{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(QUESTIONS)])
    first.stop()
    vectors_file = next((tmp_path / "current").glob("*.faiss"))
    data = bytearray(vectors_file.read_bytes())
    data[-100] ^= 0xFF
    vectors_file.write_bytes(bytes(data))

    restarted = replica(redis_server.url, tmp_path, log_level="info")
    try:
        view = restarted.view()
        assert view["snapshot"]["restored"] is None and view["rebuilds"] == 1
        assert view["entries"] == len(QUESTIONS)
        assert "index snapshot" in restarted.log() and "ignored" in restarted.log()
        assert hit(restarted, QUESTIONS[3].replace("?", " ?"))
    finally:
        restarted.stop()


def test_a_snapshot_of_another_redis_is_never_loaded(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    first = replica(redis_server.url, tmp_path)
    first.store([{"prompt": q, "response": "old"} for q in QUESTIONS])
    first.stop()
    redis_client.flushall()  # the same address, another deployment: none of those entries

    restarted = replica(redis_server.url, tmp_path, log_level="info")
    try:
        assert restarted.view()["entries"] == 0
        assert not hit(restarted, QUESTIONS[3].replace("?", " ?"))
        assert "deployment" in restarted.log()
    finally:
        restarted.stop()


def test_a_new_replica_serves_an_outgrown_scope_from_redis_while_it_builds_hnsw(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    seeder = replica(redis_server.url, tmp_path / "seed", index_snapshots=False)
    try:
        seeder.store([{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(QUESTIONS)])
    finally:
        seeder.stop()
    fresh = replica(redis_server.url, tmp_path / "fresh", hnsw_min_entries=20,
                    index_snapshot_interval_s=0.5)  # fmt: skip
    try:
        # ready on flat sub-indexes; a HIT either way (Redis's mirror, then its own HNSW)
        assert hit(fresh, QUESTIONS[7].replace("?", " ?"))
        wait_until(
            lambda: fresh.view()["index"]["hnsw_sub_indexes"] == 1,
            timeout_s=30,
            message="the HNSW built in the background",
        )
        assert fresh.view()["rebuilds"] == 2  # the flat load, then the background build
        assert all(hit(fresh, q.replace("?", " ?")) for q in QUESTIONS[:10])
    finally:
        fresh.stop()
    # what a clean stop leaves on disk is the index as it settled, HNSW and all (a rebuild
    # changes no seq or count: the snapshot must not be skipped as "unchanged")
    manifest = orjson.loads((tmp_path / "fresh" / "current" / "manifest.json").read_bytes())
    assert [part["is_hnsw"] for part in manifest["parts"]] == [True]


def test_a_namespace_affine_replica_holds_what_it_is_asked_for(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    admin = {"Authorization": "Bearer affine-admin"}
    settings = {"admin_token": "affine-admin", "index_snapshots": False}
    seeder = replica(redis_server.url, tmp_path, **settings)
    tenant_keys = {}
    try:
        for ns in ("alpha", "beta"):
            seeder.http.post("/v1/admin/tenants", headers=admin, json={"namespace": ns})
            issued = seeder.http.post(f"/v1/admin/tenants/{ns}/keys", headers=admin)
            tenant_keys[ns] = {"Authorization": f"Bearer {issued.json()['key']}"}
            seeder.http.post(
                "/v1/entries", headers=tenant_keys[ns],
                json={"entries": [{"prompt": q, "response": ns} for q in QUESTIONS[:10]]},
            ).raise_for_status()  # fmt: skip
    finally:
        seeder.stop()

    def ask(service: ServiceProcess, ns: str) -> str:
        reply = service.http.post(
            "/v1/query", headers=tenant_keys[ns],
            json={"prompt": QUESTIONS[4].replace("?", " ?"), "cache": "only"},
        )  # fmt: skip
        assert reply.json()["status"] == "HIT" and reply.json()["response"] == ns
        return str(reply.json()["entry_id"])

    affine = replica(
        redis_server.url, tmp_path, namespace_affinity=True, namespace_release_s=2,
        drift_check_interval_s=0.5, **settings,
    )  # fmt: skip
    try:
        assert affine.view()["entries"] == 0  # ready, holding nothing
        served = ask(affine, "alpha")  # right from the first lookup: Redis answers
        wait_until(lambda: affine.view()["entries_by_namespace"] == {"alpha": 10}, 10,
                   message="alpha loaded")  # fmt: skip
        assert affine.view()["held_namespaces"] == ["alpha"]
        assert ask(affine, "alpha") == served  # now from its own index
        # beta was never asked for here; alpha, not asked for again, is given up
        wait_until(lambda: affine.view()["held_namespaces"] == [], 15, message="released")
        assert affine.view()["entries"] == 0
        ask(affine, "beta")
        wait_until(lambda: affine.view()["held_namespaces"] == ["beta"], 10,
                   message="beta held")  # fmt: skip
    finally:
        affine.stop()


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_nginx_sends_each_tenant_to_the_one_affine_replica_that_holds_it(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """deploy/compose/nginx-affine.conf in front of two affine replicas: a tenant's requests
    all land on one replica, and each replica holds the namespaces of its tenants only."""
    admin = {"Authorization": "Bearer affine-admin"}
    settings = {"admin_token": "affine-admin", "index_snapshots": False}
    replicas = [replica(redis_server.url, tmp_path / str(n), namespace_affinity=True,
                        **settings) for n in range(2)]  # fmt: skip
    balancer = NginxLB([r.port for r in replicas], ROOT / "deploy/compose/nginx-affine.conf")
    balancer.start()
    try:
        wait_until(lambda: _answers(balancer.url), 10, message="nginx to answer")
        routed: dict[str, set[str]] = {}
        with httpx.Client(base_url=balancer.url, timeout=30) as client:
            for n in range(6):
                ns = f"tenant{n}"
                client.post("/v1/admin/tenants", headers=admin, json={"namespace": ns})
                issued = client.post(f"/v1/admin/tenants/{ns}/keys", headers=admin).json()
                key = {"Authorization": f"Bearer {issued['key']}"}
                for question in QUESTIONS[:4]:
                    answer = client.post("/v1/query", headers=key, json={"prompt": question})
                    assert answer.status_code == 200, answer.text
                    routed.setdefault(ns, set()).add(answer.headers["x-replica"])
        assert all(len(where) == 1 for where in routed.values()), routed
        for service in replicas:
            mine = sorted(ns for ns, where in routed.items() if where == {service.replica_id})
            wait_until(lambda s=service, m=mine: s.view()["held_namespaces"] == m, 10,
                       message=f"{service.replica_id} to hold {mine}")  # fmt: skip
    finally:
        balancer.stop()
        for service in replicas:
            service.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def store_as(service: ServiceProcess, key: dict[str, str], ns: str, questions: list[str]) -> None:
    entries = [{"prompt": q, "response": ns} for q in questions]
    service.http.post("/v1/entries", headers=key, json={"entries": entries}).raise_for_status()


def test_an_affine_replica_restarts_with_its_share_from_its_snapshot(
    redis_server: EmbeddedRedis | EmbeddedCluster, redis_client: redis.Redis, tmp_path: Path
) -> None:
    admin = {"Authorization": "Bearer affine-admin"}
    keys_of = {}
    writer = replica(redis_server.url, tmp_path / "w", admin_token="affine-admin",
                     index_snapshots=False)  # fmt: skip
    try:
        for ns in ("alpha", "beta"):
            writer.http.post("/v1/admin/tenants", headers=admin, json={"namespace": ns})
            issued = writer.http.post(f"/v1/admin/tenants/{ns}/keys", headers=admin).json()
            keys_of[ns] = {"Authorization": f"Bearer {issued['key']}"}
            store_as(writer, keys_of[ns], ns, QUESTIONS[:10])
        affine = replica(redis_server.url, tmp_path / "a", admin_token="affine-admin",
                         namespace_affinity=True)  # fmt: skip
        affine.http.post("/v1/query", headers=keys_of["alpha"],
                         json={"prompt": QUESTIONS[1], "cache": "only"})  # fmt: skip
        wait_until(lambda: affine.view()["entries_by_namespace"] == {"alpha": 10}, 10,
                   message="alpha loaded")  # fmt: skip
        affine.stop()  # its snapshot holds alpha only
        for ns in ("alpha", "beta"):  # written while it is down
            store_as(writer, keys_of[ns], ns, QUESTIONS[10:15])
    finally:
        writer.stop()
    restarted = replica(redis_server.url, tmp_path / "a", admin_token="affine-admin",
                        namespace_affinity=True)  # fmt: skip
    try:
        view = restarted.view()
        assert view["snapshot"]["restored"]["entries"] == 10
        assert view["held_namespaces"] == ["alpha"]
        assert view["entries_by_namespace"] == {"alpha": 15}  # caught up, beta not loaded
    finally:
        restarted.stop()
