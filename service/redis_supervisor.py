"""Supervision of the Redis a replica started itself (``make run`` with no Redis URL).

A killed or crashed embedded ``redis-server`` used to stay dead: every query passed through
to the (paid) LLM and ``/readyz`` said 503 for as long as one watched. The supervisor
checks the process every ``check_s``; when it is gone it starts it again on the same port
and folder (the AOF brings the entries back; the replica reconnects, re-subscribes and
catches up by its sequence numbers on its own), waiting ``backoff`` between failed tries,
doubling up to ``max_backoff_s``. Each restart is logged and counted (``/v1/replica``,
``/metrics``). After ``give_up_after`` failed tries in a row the replica is no longer
healthy: ``/healthz`` answers 503, so that an orchestrator restarts the whole service.
A replica that joined the server another process runs on its folder starts it, on the same
port, once that process let the folder go.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from service.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)


class RedisSupervisor:
    def __init__(
        self,
        server: EmbeddedRedis,
        check_s: float = 0.2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        give_up_after: int = 5,
        start_timeout_s: float = 30.0,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.server = server
        self.check_s = check_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.give_up_after = give_up_after
        self.start_timeout_s = start_timeout_s
        self.on_restart = on_restart
        self.restarts = 0  # successful restarts
        self.failed_tries = 0  # failed tries since the last success
        self.last_restart_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """False once ``give_up_after`` tries in a row failed: the service should be
        restarted from outside."""
        return self.failed_tries < self.give_up_after

    def describe(self) -> dict[str, object]:
        return {
            "url": self.server.url,
            "pid": self.server.pid,
            "joined": self.server.joined,  # another process runs it (pid None)
            "restarts": self.restarts,
            "failed_tries": self.failed_tries,
            "healthy": self.healthy,
            "last_restart_at": self.last_restart_at,
        }

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="embedded-redis-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            if not self.server.needs_start():
                continue
            log.error("embedded Redis (%s) is gone; starting it here", self.server.url)
            backoff = self.backoff_s
            while not await self._restart():
                log.error(
                    "embedded Redis did not start (%d tries in a row); next try in %.1f s%s",
                    self.failed_tries,
                    backoff,
                    "; the replica reports itself unhealthy" if not self.healthy else "",
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _restart(self) -> bool:
        started = time.monotonic()
        try:
            # spawned on this (the event loop's) thread: the child's parent-death signal
            # follows the thread that started it, and a worker thread may end before it
            self.server.spawn()
            await asyncio.to_thread(self.server.wait_until_answering, self.start_timeout_s)
        except Exception as error:  # whatever it was, the supervisor must go on trying
            self.failed_tries += 1
            log.error("embedded Redis restart failed: %s", error)
            return False
        self.restarts += 1
        self.failed_tries = 0
        self.last_restart_at = time.time()
        if self.on_restart is not None:
            self.on_restart()
        log.warning(
            "embedded Redis restarted on %s in %.2f s (restart %d); the replica reconnects "
            "and catches up",
            self.server.url,
            time.monotonic() - started,
            self.restarts,
        )
        return True
