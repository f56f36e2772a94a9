"""Scale: semantic-HIT latency and replica memory as the index grows, and start-up.

* 10k and 100k entries (``--sizes``): Redis holds that many entries (random unit vectors in
  the queries' scope) plus 200 real QQP questions; a replica is started (its rebuild time
  and the time to /readyz are recorded), then 200 semantic HITs over HTTP give p50/p99, and
  the replica's resident memory (VmRSS) is read.
* ``--tenants N`` (1M in the issue): 4 tenants share N entries (synthetic vectors, each
  tenant's quarter in its own namespace) plus 200 real QQP questions each, stored through
  the API. Measured, one after another on one Redis: a new replica (no snapshot) from
  process start to its first HIT (from Redis's mirror), to ready (flat sub-indexes) and to
  settled (HNSW built in the background), the share of lookups answered right meanwhile,
  semantic HIT p50, RSS; the same replica restarted (its snapshot) to ready; both again
  with compressed HNSW (``index_codec``); and two namespace-affine replicas each asked for
  two tenants (as nginx's consistent hash would send them): RSS and time to hold them.

Writes bench/results/scale.json.
    python bench/scale.py [--sizes 10000,100000] [--tenants 10000,1000000] [--codecs fp16,sq8]
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import redis as redis_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS,
    ServiceProcess,
    distinct_questions,
    fill_redis,
    percentiles,
    random_unit_vectors,
    write_results,
)
from bench.latency import stages_of
from index.store.keys import new_entry_id
from index.store.records import IndexedVector
from index.vectors.local_index import LocalIndex
from service.embedded_redis import EmbeddedRedis
from service.keying.normalise import scope_of


def cpu_seconds(pid: int) -> float:
    """CPU time a process and its waited-for children used (Redis forks for its GC)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """Cores busy per process over a phase: what else the machine was doing while a
    figure was taken (at 1M, Redis was seen using most of a core through a run)."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        return {
            name: round((cpu_seconds(pid) - self.before[name]) / elapsed, 3)
            for name, pid in self.pids.items()
        }


def wait_quiet(deadline_s: float = 300, **pids: int) -> float:
    """Seconds until the processes use under 0.1 core together over 2 s (or the deadline):
    a HIT's latency is measured on a settled deployment, not during Redis's own work."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        share = CpuShare(**pids)
        time.sleep(2)  # a sampling window, not a synchronisation
        if sum(share.cores().values()) < 0.1:
            break
    return round(time.monotonic() - started, 1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def with_redis(size: int) -> dict[str, Any]:
    questions = distinct_questions(200, seed=13)
    with tempfile.TemporaryDirectory(prefix="dc-bench-scale-") as folder:
        redis = EmbeddedRedis(Path(folder), appendonly=False).start()
        try:
            asyncio.run(fill_redis(redis.url, size, scope=scope_of(None)))
            with ServiceProcess(redis.url, log_level="warning") as seeder:
                seeder.store(
                    [{"prompt": q, "response": f"answer {i}"} for i, q in enumerate(questions)]
                )
            replica = ServiceProcess(redis.url, log_level="warning")
            try:
                to_ready = replica.wait_ready(timeout_s=900)
                view = replica.view()
                samples = []
                replica.query(questions[0].replace("?", " ?"), cache="only")
                for question in questions:
                    started = time.perf_counter()
                    answer = replica.query(
                        question.replace("?", " ?") if "?" in question else question + " ?",
                        cache="only",
                    ).json()
                    if answer["status"] == "HIT":
                        samples.append((time.perf_counter() - started) * 1000)
                memory = rss_mb(replica.process.pid)
            finally:
                replica.stop()
        finally:
            redis.stop()
    return {
        "entries": size + len(questions),
        "semantic_hit": percentiles(samples),
        "replica_rss_mb": memory,
        "rebuild_seconds": view["last_rebuild"]["seconds"],
        "process_start_to_ready_seconds": round(to_ready, 2),
        "index": view["index"],
    }


ADMIN = "bench-admin-token"
TENANTS = ("t0", "t1", "t2", "t3")


def semantic(question: str) -> str:
    return question.replace("?", " ?") if "?" in question else question + " ?"


def tenant_keys(replica: ServiceProcess) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    issued = {}
    for ns in TENANTS:
        replica.http.post("/v1/admin/tenants", headers=admin, json={"namespace": ns})
        reply = replica.http.post(f"/v1/admin/tenants/{ns}/keys", headers=admin)
        reply.raise_for_status()
        issued[ns] = reply.json()["key"]
    return issued


def lookup(
    replica: ServiceProcess,
    key: str,
    question: str,
    expected: str | None = None,
    stages: dict[str, list[float]] | None = None,
) -> tuple[float, str]:
    """One paraphrased lookup: its time, and ``right`` (a HIT with ``expected``, or any HIT
    when none is given), ``wrong`` (a HIT with another answer), ``miss`` or ``error``. With
    ``stages``, a HIT's ``Server-Timing`` stages are added to it."""
    started = time.perf_counter()
    reply = replica.http.post(
        "/v1/query",
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": semantic(question), "cache": "only"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    if reply.status_code != 200:
        return elapsed, "error"
    body = reply.json()
    if body["status"] != "HIT":
        return elapsed, "miss"
    if stages is not None:
        for name, ms in stages_of(reply.headers.get("server-timing", "")).items():
            stages.setdefault(name, []).append(ms)
    return elapsed, "right" if expected in (None, body["response"]) else "wrong"


def watch_start(
    replica: ServiceProcess, keys: dict[str, str], questions: dict[str, list[str]]
) -> dict[str, Any]:
    """From process start: the first HIT, ready, settled; how lookups were answered until
    then (right, wrong, MISS, error)."""
    started, first_hit = time.monotonic(), None
    outcomes: Counter[str] = Counter()
    ready_at = None
    while True:
        try:
            ready = replica.http.get("/readyz").status_code == 200
            asked = sum(outcomes.values())
            ns = TENANTS[asked % len(TENANTS)]
            number = asked % len(questions[ns])
            _, outcome = lookup(replica, keys[ns], questions[ns][number], f"{ns} {number}")
        except Exception:  # not listening yet
            time.sleep(0.2)
            if time.monotonic() - started > 1800:
                raise
            continue
        outcomes[outcome] += 1
        if outcome == "right" and first_hit is None:
            first_hit = time.monotonic() - started
        if ready and ready_at is None:
            ready_at = time.monotonic() - started
        if ready_at is not None and replica.view()["index"]["outgrown_sub_indexes"] == 0:
            break
        time.sleep(0.25)
    asked = sum(outcomes.values())
    return {
        "first_hit_s": round(first_hit or -1, 2),
        "ready_s": round(ready_at, 2),
        "settled_s": round(time.monotonic() - started, 2),
        "lookups_while_starting": asked,
        "answered_right_while_starting": round(outcomes["right"] / asked, 4),
        "outcomes_while_starting": dict(outcomes),
    }


def hit_latency(
    replica: ServiceProcess, keys: dict[str, str], questions: dict[str, list[str]]
) -> dict[str, Any]:
    """p50 etc. of semantic HITs once settled, and how the same kind of lookups were
    answered (to set beside the answers while starting)."""
    samples, outcomes, stages = [], Counter[str](), dict[str, list[float]]()
    for ns in TENANTS:
        for number, question in enumerate(questions[ns][:50]):
            elapsed, outcome = lookup(replica, keys[ns], question, f"{ns} {number}", stages)
            outcomes[outcome] += 1
            if outcome == "right":
                samples.append(elapsed)
    return {
        **percentiles(samples),
        "outcomes": dict(outcomes),
        "server_timing_p50_ms": {
            name: round(statistics.median(values), 3) for name, values in stages.items()
        },
    }


def redis_pid(url: str) -> int:
    client = redis_client.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def at_scale(total: int, codecs: list[str], reuse_url: str | None = None) -> dict[str, Any]:
    """4 tenants sharing ``total`` entries: start-up, restart, memory, affinity. With
    ``reuse_url``, a Redis an earlier run of this harness filled (same ``total``: its fill
    took 28-36 min here) is measured again, its fill and seeding skipped."""
    corpus = distinct_questions(200 * len(TENANTS), seed=21)
    questions = {ns: corpus[i * 200 : (i + 1) * 200] for i, ns in enumerate(TENANTS)}
    results: dict[str, Any] = {"entries": total + len(corpus), "tenants": len(TENANTS)}
    common: dict[str, Any] = {"admin_token": ADMIN, "log_level": "info"}
    with tempfile.TemporaryDirectory(prefix="dc-bench-scale-") as folder:
        redis = None
        if reuse_url is None:
            redis = EmbeddedRedis(Path(folder) / "redis", appendonly=False).start()
        url = reuse_url or redis.url  # type: ignore[union-attr]
        try:
            if redis is None:
                results["fill_seconds"] = "reused a Redis filled by an earlier run"
            else:
                started = time.perf_counter()
                for ns in TENANTS:
                    asyncio.run(fill_redis(url, total // len(TENANTS), scope=scope_of(None),
                                           ns=ns, seed=hash(ns) % 1000))  # fmt: skip
                results["fill_seconds"] = round(time.perf_counter() - started, 1)
                print(f"filled {total} entries in {results['fill_seconds']} s", flush=True)
            with ServiceProcess(url, index_snapshots=False, **common) as seeder:
                keys = tenant_keys(seeder)
                for ns in TENANTS if redis is not None else ():
                    seeder.http.post(
                        "/v1/entries",
                        headers={"Authorization": f"Bearer {keys[ns]}"},
                        json={
                            "entries": [
                                {"prompt": q, "response": f"{ns} {i}"}
                                for i, q in enumerate(questions[ns])
                            ]
                        },
                    ).raise_for_status()
            for codec in codecs:
                snapshots = Path(folder) / f"snapshots-{codec}"
                run: dict[str, Any] = {}
                replica = ServiceProcess(
                    url, index_snapshot_dir=str(snapshots), index_codec=codec, **common
                )
                try:
                    run["new_replica"] = watch_start(replica, keys, questions)
                    pids = {"redis": redis_pid(url), "replica": replica.process.pid}
                    run["waited_for_quiet_s"] = wait_quiet(**pids)
                    busy = CpuShare(**pids)
                    run["semantic_hit"] = hit_latency(replica, keys, questions)
                    run["semantic_hit"]["cores_busy"] = busy.cores()
                    view = replica.view()
                    run["maintenance"] = {
                        name: view[name] for name in ("rebuilds", "rebuilds_skipped")
                    }
                    run["rss_mb"] = rss_mb(replica.process.pid)
                finally:
                    replica.stop()  # a clean stop writes its snapshot
                written = [line for line in replica.final_log.splitlines()
                           if "index snapshot written" in line]  # fmt: skip
                run["snapshot_written"] = written[-1].split(": ", 1)[-1] if written else None
                restarted = ServiceProcess(
                    url, index_snapshot_dir=str(snapshots), index_codec=codec, **common
                )
                try:
                    run["restarted_replica"] = watch_start(restarted, keys, questions)
                    run["restarted_view"] = restarted.view()["snapshot"]
                    run["restarted_rss_mb"] = rss_mb(restarted.process.pid)
                finally:
                    restarted.stop()
                results[codec] = run
                print(f"{codec}: {run}", flush=True)
            results["affine"] = affine(url, keys, questions, codecs[-1], common)
            print(f"affine: {results['affine']}", flush=True)
        finally:
            if redis is not None:
                redis.stop()
    return results


def affine(
    redis_url: str,
    keys: dict[str, str],
    questions: dict[str, list[str]],
    codec: str,
    common: dict[str, Any],
) -> dict[str, Any]:
    """Two namespace-affine replicas, each asked for two of the four tenants."""
    shares = {"A": TENANTS[:2], "B": TENANTS[2:]}
    figures: dict[str, Any] = {}
    replicas = {
        name: ServiceProcess(redis_url, namespace_affinity=True, index_codec=codec,
                             index_snapshots=False, replica_id=f"affine-{name}", **common)
        for name in shares
    }  # fmt: skip
    try:
        for name, replica in replicas.items():
            replica.wait_ready()
            started = time.monotonic()
            for ns in shares[name]:
                lookup(replica, keys[ns], questions[ns][0])  # the first lookup: from Redis
            deadline = time.monotonic() + 1800
            while (
                set(replica.view()["held_namespaces"]) != set(shares[name])
                or (replica.view()["index"]["outgrown_sub_indexes"])
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("affine replica did not settle")
                time.sleep(0.5)
            share = {ns: questions[ns] for ns in shares[name]}
            samples = [lookup(replica, keys[ns], q)[0] for ns in share for q in share[ns][:50]]
            figures[name] = {
                "namespaces": list(shares[name]),
                "held_after_s": round(time.monotonic() - started, 2),
                "entries": replica.view()["entries"],
                "rss_mb": rss_mb(replica.process.pid),
                "semantic_hit_p50_ms": round(statistics.median(samples), 3),
            }
    finally:
        for replica in replicas.values():
            replica.stop()
    return figures


def index_only(size: int) -> dict[str, Any]:
    rng = np.random.default_rng(17)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index = LocalIndex(384, maintain_inline=True)
    import faiss

    faiss.omp_set_num_threads(2)  # as a replica's rebuild does
    started = time.perf_counter()
    kept = None
    for offset in range(0, size, 50_000):
        vectors = random_unit_vectors(min(50_000, size - offset), rng)
        if kept is None:
            kept = vectors[:500].copy()
        index.add_many(
            IndexedVector("default", "s", new_entry_id(), v, offset + j)
            for j, v in enumerate(vectors)
        )
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    assert kept is not None
    queries = kept + 0.02 * rng.standard_normal(kept.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    timings = []
    for query in queries:
        started = time.perf_counter()
        index.search("default", "s", query, 4)
        timings.append((time.perf_counter() - started) * 1000)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "entries": size,
        "build_seconds": round(build_s, 1),
        "search_p50_ms": round(statistics.median(timings), 3),
        "search_p99_ms": round(sorted(timings)[int(0.99 * len(timings))], 3),
        "memory_added_mb": round(after - before, 1),
        "index": index.describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--million", action="store_true", help="also the 1M index-only run")
    parser.add_argument(
        "--tenants", default="", help="entries shared by 4 tenants; several: 10000,1000000"
    )
    parser.add_argument("--codecs", default="fp16")
    parser.add_argument(
        "--reuse-redis", default=None, help="with one --tenants size: a Redis it filled before"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"with_redis": [], "index_only": []}
    # each size in the same harness (4 tenants, keys, the same lookups): the 1M figures set
    # against the 10k ones of the same run
    for total in (int(t) for t in args.tenants.split(",") if t):
        results.setdefault("at_scale", {})[str(total)] = at_scale(
            total, args.codecs.split(","), args.reuse_redis
        )
        write_results("scale", kept_from_before(results))  # should a later size fail
    for size in (int(s) for s in args.sizes.split(",") if s):
        figures = with_redis(size)
        results["with_redis"].append(figures)
        print(
            f"{figures['entries']:>7} entries: semantic HIT p50 "
            f"{figures['semantic_hit']['p50_ms']} ms p99 {figures['semantic_hit']['p99_ms']} "
            f"ms, RSS {figures['replica_rss_mb']} MB, rebuild {figures['rebuild_seconds']} s, "
            f"ready after {figures['process_start_to_ready_seconds']} s"
        )
    if args.million:
        figures = index_only(1_000_000)
        results["index_only"].append(figures)
        print(
            f"1M index only: build {figures['build_seconds']} s, search p50 "
            f"{figures['search_p50_ms']} ms, +{figures['memory_added_mb']} MB"
        )
    write_results("scale", kept_from_before(results))


def kept_from_before(results: dict[str, Any]) -> dict[str, Any]:
    """The sections of the last scale.json this run did not measure again, kept (each
    marked with when it was measured), so a run of one part does not erase the others."""
    path = RESULTS / "scale.json"
    if not path.exists():
        return results
    before = json.loads(path.read_text())
    merged = dict(results)
    kept = {}
    for section in ("with_redis", "index_only"):
        if not merged.get(section) and before.get(section):
            merged[section], kept[section] = before[section], before["measured_at"]
    for size, figures in before.get("at_scale", {}).items():  # sizes, one by one
        if size not in merged.get("at_scale", {}):
            merged.setdefault("at_scale", {})[size] = figures
            kept[f"at_scale {size}"] = before["measured_at"]
    return {**merged, "kept_from_earlier_run": kept} if kept else merged


if __name__ == "__main__":
    main()
