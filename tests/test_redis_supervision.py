"""The Redis a replica started itself is supervised; an outage's pass-throughs are counted.

Before: after ``kill -9`` of the embedded ``redis-server`` every query was a BYPASS (a paid
LLM call) and ``/readyz`` said 503 for as long as one watched; BYPASS answers during an
outage left ``/v1/stats`` and ``/metrics`` unchanged.
"""

import asyncio
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.embedded_redis import EmbeddedRedis
from service.redis_supervisor import RedisSupervisor
from tests.conftest import make_settings
from tests.helpers import CacheService, wait_until


@pytest.fixture
def self_hosted(tmp_path: Path) -> Iterator[CacheService]:
    """A replica that starts (and so supervises) its own Redis, as ``make run`` does."""
    settings = make_settings("unused", redis_data_dir=tmp_path / "redis")
    service = CacheService(settings.model_copy(update={"redis_url": None})).start()
    yield service
    service.stop()


def _metric(service: CacheService, name: str) -> float:
    for line in service.http.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_killed_embedded_redis_is_restarted_and_the_cache_comes_back(
    self_hosted: CacheService, tmp_path: Path
) -> None:
    service = self_hosted
    assert service.query("What is the capital of France?").json()["status"] == "MISS"
    described = service.http.get("/v1/replica").json()["embedded_redis"]
    # the CLI finds the embedded Redis through this file (it is not on 6379)
    assert (tmp_path / "redis" / "url").read_text().strip() == described["url"]
    assert described["restarts"] == 0

    os.kill(described["pid"], signal.SIGKILL)
    wait_until(
        lambda: service.http.get("/v1/replica").json()["embedded_redis"]["restarts"] == 1,
        10, message="the embedded Redis restarted within 10 s",
    )  # fmt: skip
    wait_until(lambda: service.http.get("/readyz").status_code == 200, 20, message="ready again")
    # the AOF kept the entry: a paraphrase is a HIT again, not a paid pass-through
    assert service.query("Tell me the capital of France").json()["status"] == "HIT"
    assert service.http.get("/healthz").status_code == 200
    assert _metric(service, "dynacache_embedded_redis_restarts_total") == 1
    assert service.http.get("/v1/replica").json()["embedded_redis"]["pid"] != described["pid"]


def test_a_redis_that_cannot_start_again_makes_the_replica_unhealthy() -> None:
    async def scenario(data_dir: Path) -> tuple[int, bool]:
        server = EmbeddedRedis(data_dir, appendonly=False).start()
        supervisor = RedisSupervisor(server, check_s=0.05, backoff_s=0.05, give_up_after=2)
        supervisor.start()
        blocker = socket.socket()
        try:
            os.kill(server.pid or 0, signal.SIGKILL)
            # its port taken by another program: every restart fails
            await asyncio.to_thread(_take_port, blocker, server.port)
            for _ in range(400):  # a deadline of 20 s, checked every 50 ms
                if not supervisor.healthy:
                    break
                await asyncio.sleep(0.05)
            return supervisor.failed_tries, supervisor.healthy
        finally:
            await supervisor.stop()
            blocker.close()
            server.stop()

    with tempfile.TemporaryDirectory(prefix="dc-supervised-") as data_dir:
        failed, healthy = asyncio.run(scenario(Path(data_dir)))
    assert failed >= 2 and not healthy


def _take_port(sock: socket.socket, port: int) -> None:
    """Listen on ``port`` once the killed server has let go of it."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for _ in range(200):
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"port {port} never came free")


def test_pass_throughs_during_an_outage_are_counted(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "own", appendonly=True) as own:
        service = CacheService(make_settings(own.url, sim_latency_ms=0)).start()
        try:
            chat = {"model": "m", "messages": [{"role": "user", "content": "Outage question?"}]}
            assert service.http.post("/v1/chat/completions", json=chat).headers["x-cache"] == "MISS"
            own.freeze()
            for i in range(5):
                answer = service.http.post(
                    "/v1/query", json={"prompt": f"Question number {i} in the outage"}, timeout=10
                )
                assert answer.json()["status"] == "BYPASS"
            # its entry is known here, but cannot be confirmed in Redis: passed through
            streamed = service.http.post("/v1/chat/completions", json={**chat, "stream": True})
            assert streamed.headers["x-cache"] == "BYPASS"
            # seen in this process at once
            assert (
                _metric(service, 'dynacache_redis_outage_bypasses_total{namespace="default"}') == 6
            )
            own.thaw()
            # and in Redis once it answers again
            wait_until(
                lambda: service.http.get("/v1/stats").status_code == 200
                and service.http.get("/v1/stats").json()["outage_bypasses"] == 6,
                15, message="the outage's pass-throughs reached /v1/stats",
            )  # fmt: skip
            assert service.http.get("/v1/stats").json()["bypasses"] == 6
        finally:
            service.stop()


def test_a_miss_says_when_its_answer_was_stored_and_when_it_expires(
    self_hosted: CacheService,
) -> None:
    body = self_hosted.query("How tall is Mount Everest?", ttl=600).json()
    assert body["status"] == "MISS" and body["entry_id"]
    assert body["created"] is not None
    assert body["expires_at"] == pytest.approx(body["created"] + 600)
    hit = self_hosted.query("How tall is Mount Everest?").json()
    assert hit["created"] == pytest.approx(body["created"])
    forever = self_hosted.query("How deep is the Mariana Trench?", ttl=0).json()
    assert forever["created"] is not None and forever["expires_at"] is None
