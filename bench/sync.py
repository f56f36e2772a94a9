"""Replica sync figures: replication lag and start-up rebuild.

* Lag: 500 writes through replica A; after each, replica B is asked (``cache: only``, a
  variant of the prompt that only the semantic path can match) until it HITs. The lag is
  from A's answer to B's first HIT, so it includes one lookup on B; B's lookup latency for
  an entry it already holds is reported beside it.
* Rebuild: Redis is filled with 10k and 100k entries (random unit vectors written through
  the store's own write script), then a replica is started; its rebuild time and rate come
  from its /v1/replica view, its time to /readyz from the outside.

Writes bench/results/sync.json.   python bench/sync.py [--writes 500] [--sizes 10000,100000]
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fill_redis, percentiles, write_results
from devtools.replica_process import ServiceProcess
from service.embedded_redis import EmbeddedRedis


def measure_lag(redis_url: str, writes: int) -> dict[str, Any]:
    common = {"sim_latency_ms": 0, "embed_threads": 1}
    a = ServiceProcess(redis_url, replica_id="lag-A", **common)
    b = ServiceProcess(redis_url, replica_id="lag-B", **common)
    try:
        a.wait_ready()
        b.wait_ready()
        lags, lookups = [], []
        for i in range(writes):
            prompt = f"Replication probe {i}: how far is planet {i} from its star?"
            a.query(prompt, cache="refresh").raise_for_status()
            written = time.perf_counter()
            while b.query(prompt.replace("?", " ?"), cache="only").json()["status"] != "HIT":
                if time.perf_counter() - written > 10:
                    raise TimeoutError(f"write {i} never reached B")
            lags.append((time.perf_counter() - written) * 1000)
            started = time.perf_counter()
            b.query(prompt.replace("?", " ?"), cache="only")
            lookups.append((time.perf_counter() - started) * 1000)
        return {
            "write_to_hit_on_other_replica": percentiles(lags),
            "lookup_on_other_replica_baseline": percentiles(lookups),
        }
    finally:
        a.stop()
        b.stop()


def measure_rebuild(size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dc-bench-sync-") as folder:
        server = EmbeddedRedis(Path(folder), appendonly=False).start()
        try:
            fill_s = asyncio.run(fill_redis(server.url, size))
            replica = ServiceProcess(server.url, replica_id=f"rebuild-{size}")
            try:
                to_ready = replica.wait_ready(timeout_s=600)
                view = replica.view()
            finally:
                replica.stop()
        finally:
            server.stop()
    rebuild = view["last_rebuild"]
    assert rebuild["entries"] == size, rebuild
    return {
        "entries": size,
        "fill_seconds": round(fill_s, 2),
        "rebuild_seconds": rebuild["seconds"],
        "rebuild_entries_per_s": round(size / rebuild["seconds"]) if rebuild["seconds"] else None,
        "process_start_to_ready_seconds": round(to_ready, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dc-bench-lag-") as folder:
        server = EmbeddedRedis(Path(folder), appendonly=False).start()
        try:
            results["lag"] = measure_lag(server.url, args.writes)
        finally:
            server.stop()
    lag = results["lag"]["write_to_hit_on_other_replica"]
    print(
        f"lag (write on A → HIT on B), n={lag['n']}: p50 {lag['p50_ms']} ms, "
        f"p99 {lag['p99_ms']} ms; B lookup baseline p50 "
        f"{results['lag']['lookup_on_other_replica_baseline']['p50_ms']} ms"
    )
    results["rebuild"] = []
    for size in (int(s) for s in args.sizes.split(",")):
        figures = measure_rebuild(size)
        results["rebuild"].append(figures)
        print(
            f"rebuild {size} entries: {figures['rebuild_seconds']} s "
            f"({figures['rebuild_entries_per_s']}/s), process start → ready "
            f"{figures['process_start_to_ready_seconds']} s"
        )
    results["decision_stage"] = "static threshold (index sync, not decisions, is measured)"
    write_results("sync", results)


if __name__ == "__main__":
    main()
