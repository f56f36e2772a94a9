"""Where a semantic HIT's time goes, by sampling the replica (py-spy) under load.

A replica holds 1,000 QQP questions; semantic lookups (each question with " ?" for "?",
``cache: only``) are sent by one client (keep-alive, one at a time) and then by 16 (wrk),
while py-spy samples every thread of the replica for ``--seconds``. Reported per run: how
busy each thread was (share of samples in which it was running: the event loop thread vs
the embedding lanes), and where the event loop's samples fell (the ASGI server, FastAPI and
its middleware, the query path, the Redis client, the embedding call, telemetry, ...).
Writes bench/results/profile.json.   python bench/profile_hits.py [--seconds 10]
"""

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ServiceProcess, distinct_questions, write_results
from bench.latency import LeanClient, semantic_variant
from bench.throughput import run_wrk, semantic_lookup_inputs
from service.embedded_redis import EmbeddedRedis

PY_SPY = Path(sys.executable).parent / "py-spy"
# where an event-loop sample is counted: the first of these layers present in its stack (so
# a Redis call made by the query path counts as the Redis client's, and FastAPI only what
# no layer inside it was doing)
CATEGORIES = (
    ("redis client", ("redis/",)),
    ("Redis store", ("index/store/",)),
    ("embedding call (hop to a lane)", ("index/embedding/",)),
    ("FAISS search", ("index/vectors/",)),
    (
        "telemetry and metrics",
        ("service/engine/telemetry", "service/engine/metrics", "prometheus_client"),
    ),
    ("keying and validation", ("service/keying/", "service/policy/", "re2/")),
    ("query path", ("service/engine/",)),
    ("route and auth", ("service/http/",)),
    ("pydantic", ("pydantic",)),
    ("FastAPI and Starlette", ("fastapi/", "starlette/")),
    ("uvicorn (HTTP)", ("uvicorn/",)),
    ("the event loop itself (callbacks, sockets)", ("asyncio/",)),
)


def category(frames: list[str]) -> str:
    for name, markers in CATEGORIES:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "elsewhere"


def summarise(raw: Path, seconds: float) -> dict[str, Any]:
    threads: collections.Counter[str] = collections.Counter()
    loop: collections.Counter[str] = collections.Counter()
    unreadable = 0
    # one stack per "\n"-ended line ("frame;frame;... count"); a frame name py-spy read
    # garbled can hold other line breaks (splitlines would cut it) or end without a count
    for line in raw.read_text(errors="replace").split("\n"):
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            unreadable += bool(line)
            continue
        frames = stack.split(";")
        name = "event loop" if "MainThread" in frames[0] else (
            "embedding lanes" if "embed" in frames[0] else "other threads"
        )  # fmt: skip
        threads[name] += int(count)
        if name == "event loop":
            loop[category(frames[1:])] += int(count)
    samples_per_thread = seconds * 100  # py-spy's default rate
    loop_total = sum(loop.values()) or 1
    return {
        "unreadable_stacks": unreadable,
        "busy_share_of_a_core": {
            name: round(count / samples_per_thread, 3) for name, count in threads.items()
        },
        "event_loop_samples": {
            name: round(count / loop_total, 3) for name, count in loop.most_common()
        },
    }


def profiled(
    pid: int, seconds: int, folder: Path, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    raw = folder / f"{name}.txt"
    process = subprocess.Popen(
        [str(PY_SPY), "record", "-o", str(raw), "-f", "raw", "-d", str(seconds), "-p",
         str(pid), "--threads", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not PY_SPY.exists() or shutil.which("wrk") is None:
        sys.exit("needs py-spy (pip install py-spy) and wrk (apt-get install wrk)")
    questions = distinct_questions(1000, seed=8)
    results: dict[str, Any] = {"seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="dc-bench-profile-") as folder:
        redis = EmbeddedRedis(Path(folder) / "redis", appendonly=False).start()
        try:
            with ServiceProcess(redis.url, log_level="error") as service:
                service.store([{"prompt": q, "response": f"a{i}"} for i, q in enumerate(questions)])
                # one client
                client = LeanClient(service.port)
                stop = threading.Event()
                sent = [0]

                def ask() -> None:
                    while not stop.is_set():
                        client.post("/v1/query", {"prompt": semantic_variant(
                            questions[sent[0] % len(questions)]), "cache": "only"})  # fmt: skip
                        sent[0] += 1

                asker = threading.Thread(target=ask)
                asker.start()
                time.sleep(1)
                spy, raw = profiled(service.process.pid, args.seconds, Path(folder), "one")
                spy.wait()
                stop.set()
                asker.join()
                results["one_client"] = summarise(raw, args.seconds)
                # 16 clients
                script, bodies = semantic_lookup_inputs(Path(folder), questions)
                spy, raw = profiled(service.process.pid, args.seconds, Path(folder), "sixteen")
                load = run_wrk(service.url, 16, args.seconds + 1, script, bodies)
                spy.wait()
                results["sixteen_clients"] = {**summarise(raw, args.seconds), "wrk": load}
        finally:
            redis.stop()
    for name in ("one_client", "sixteen_clients"):
        print(name, results[name])
    write_results("profile", results)


if __name__ == "__main__":
    main()
