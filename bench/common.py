"""Shared by the benchmark scripts: a service in a subprocess, data, percentiles, results."""

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = Path(os.environ.get("DYNACACHE_DATA_DIR", ROOT.parent / "shared" / "data"))


def free_port() -> int:
    from service.embedded_redis import free_port as pick

    return pick()


class ServiceProcess:
    """``python -m service`` with its own embedded Redis in a temporary folder."""

    def __init__(self, **env: str | float | int) -> None:
        self.port = free_port()
        self._data = tempfile.TemporaryDirectory(prefix="dc-bench-")
        variables = {
            "DYNACACHE_PORT": str(self.port),
            "DYNACACHE_REDIS_DATA_DIR": str(Path(self._data.name) / "redis"),
            "DYNACACHE_LOG_LEVEL": "warning",
            "HF_HUB_OFFLINE": "1",
        }
        variables.update({f"DYNACACHE_{k.upper()}": str(v) for k, v in env.items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=ROOT,
            env={**os.environ, **variables},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def wait_ready(self, timeout_s: float = 300) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError("service exited during start-up")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("service not ready")

    def store(self, pairs: Sequence[tuple[str, str]], batch: int = 500) -> None:
        for start in range(0, len(pairs), batch):
            body = {
                "entries": [{"prompt": p, "response": r} for p, r in pairs[start : start + batch]]
            }
            self.http.post("/v1/entries", json=body).raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._data.cleanup()

    def __enter__(self) -> "ServiceProcess":
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def qqp_pairs() -> Iterator[dict[str, Any]]:
    with open(DATA / "qqp_open.jsonl", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def distinct_questions(count: int, seed: int = 7, skip: int = 0) -> list[str]:
    """``count`` distinct QQP questions, seeded, after skipping the first ``skip``."""
    seen: dict[str, None] = {}
    for pair in qqp_pairs():
        for question in (pair["q1"], pair["q2"]):
            seen.setdefault(question.strip(), None)
    questions = [q for q in seen if q]
    random.Random(seed).shuffle(questions)
    return questions[skip : skip + count]


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(at(0.95), 3),
        "p99_ms": round(at(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path
