"""Test helpers: real servers on 127.0.0.1 and waiting on conditions with a deadline."""

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, Self, TypeVar

import httpx
import redis
import uvicorn
import uvloop
from fastapi import FastAPI

from service.app import create_app
from service.embedded_redis import free_port
from service.runtime import Runtime
from service.settings import Settings

T = TypeVar("T")


def wait_until(
    condition: Callable[[], Any],
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")
        time.sleep(interval_s)


def store_entries(
    http: httpx.Client, entries: list[dict[str, Any]], headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> httpx.Response:  # fmt: skip
    """``POST /v1/entries`` as a client should: a 503 (Redis slower than the request path's
    timeout on a saturated machine; the answer names what was stored) is sent again, which
    the API makes idempotent, until it is stored or the deadline passes."""
    answers: list[httpx.Response] = []

    def stored() -> bool:
        answers.append(http.post("/v1/entries", json={"entries": entries}, headers=headers))
        return answers[-1].status_code != 503

    wait_until(stored, timeout_s, interval_s=0.2, message="the entries stored")
    answers[-1].raise_for_status()
    return answers[-1]


class ServerThread:
    """Runs an ASGI app under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.loop = uvloop.new_event_loop()  # the loop `uvicorn` runs a replica on
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.close()

    def on_loop(self, action: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run ``action`` on the server's event loop (where the app changes its state) and
        return its result: a test changing a replica's index from its own thread would race
        the replica's event handling."""

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> "ServerThread":
        self.thread.start()
        wait_until(
            lambda: self.server.started or not self.thread.is_alive(),
            timeout_s,
            message="server start",
        )
        if not self.server.started:
            raise RuntimeError("server failed to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class CacheService(ServerThread):
    """A Dyna-Cache replica in this process, with an httpx client bound to it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(create_app(settings), settings.port)
        self.settings = settings
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self, timeout_s: float = 60.0, wait_ready: bool = True) -> "CacheService":
        super().start(timeout_s)
        if wait_ready:
            wait_until(
                lambda: self.http.get("/readyz").status_code == 200,
                timeout_s,
                message="/readyz 200",
            )
        return self

    def stop(self) -> None:
        self.http.close()
        super().stop()

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def query(self, prompt: str, **fields: Any) -> httpx.Response:
        return self.http.post("/v1/query", json={"prompt": prompt, **fields})


def mirror_count(client: "redis.Redis", query: str) -> int:
    """Entries of the Redis search mirror matching ``query``: one index on one Redis, one per
    primary on a cluster (each queried on its node)."""
    if not isinstance(client, redis.RedisCluster):
        reply = client.execute_command(  # type: ignore[no-untyped-call]
            "FT.SEARCH", "dc:idx", query, "NOCONTENT"
        )
        return int(reply[b"total_results"] if isinstance(reply, dict) else reply[0])
    total = 0
    for node in client.get_primaries():
        for name in client.execute_command("FT._LIST", target_nodes=node):
            reply = client.execute_command("FT.SEARCH", name, query, "NOCONTENT", target_nodes=node)
            total += int(reply[b"total_results"] if isinstance(reply, dict) else reply[0])
    return total
