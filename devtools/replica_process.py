"""Dyna-Cache replicas as real processes (``python -m service``): an offline tool that tests
and benchmarks use to start, wait for and stop replicas."""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from service.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[1]


class ServiceProcess:
    """One replica. Without ``redis_url`` it starts its own embedded Redis in a temp folder."""

    def __init__(
        self, redis_url: str | None = None, port: int | None = None, **settings: Any
    ) -> None:
        self.port = port or free_port()
        self.replica_id = str(settings.pop("replica_id", f"replica-{self.port}"))
        token = settings.get("admin_token")
        self._operator = {"Authorization": f"Bearer {token}"} if token else {}
        self._folder = tempfile.TemporaryDirectory(prefix="dc-replica-")
        self.log_path = Path(self._folder.name) / "service.log"
        env = {
            "DYNACACHE_PORT": str(self.port),
            "DYNACACHE_REPLICA_ID": self.replica_id,
            "DYNACACHE_REDIS_DATA_DIR": str(Path(self._folder.name) / "redis"),
            "DYNACACHE_LOG_LEVEL": "warning",
            # the static threshold unless asked (pair_model="auto"): a replica's decisions
            # must not depend on whether this clone has built the pair model yet
            "DYNACACHE_PAIR_MODEL": "off",
            # no audits unless asked: an audit is an extra LLM call a test or bench counts
            "DYNACACHE_AUDIT_RATE": "0",
            "HF_HUB_OFFLINE": "1",
        }
        if redis_url is not None:
            env["DYNACACHE_REDIS_URL"] = redis_url
        env.update({f"DYNACACHE_{name.upper()}": str(value) for name, value in settings.items()})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.final_log = ""
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def wait_ready(self, timeout_s: float = 180) -> float:
        """Seconds from now until /readyz answered 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica exited at start-up:\n{self.log()[-3000:]}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"replica not ready after {timeout_s} s:\n{self.log()[-3000:]}")

    def wait_settled(self, timeout_s: float = 900) -> float:
        """Seconds from now until no (namespace, scope) waits for its HNSW (a replica is
        ready on flat sub-indexes and builds those in the background)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.view()["index"].get("outgrown_sub_indexes", 0) == 0:
                return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"HNSW not built after {timeout_s} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, prompt: str, **fields: Any) -> httpx.Response:
        return self.http.post("/v1/query", json={"prompt": prompt, **fields})

    def view(self, ids: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(
            "/v1/replica", params={"ids": ids}, headers=self._operator
        ).json()
        return body

    def store(self, entries: Sequence[dict[str, Any]], batch: int = 500) -> list[str]:
        stored: list[str] = []
        for start in range(0, len(entries), batch):
            response = self.http.post(
                "/v1/entries", json={"entries": entries[start : start + batch]}
            )
            response.raise_for_status()
            stored.extend(item["entry_id"] for item in response.json()["entries"])
        return stored

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would; ``stop`` still cleans up."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def rss_kb(self) -> int:
        """Resident memory of the replica's process (kB), from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=120)  # a clean stop writes the index snapshot
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self.final_log = self.log()  # the folder goes: what it logged stays readable
        self._folder.cleanup()

    def __enter__(self) -> Self:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
