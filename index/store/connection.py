"""Connecting to Redis, and what counts as Redis being unavailable."""

import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Redis not answering (refused, reset, timed out), or not taking writes now (out of memory
# under noeviction, a read-only replica during a failover, still loading its data): the
# engine passes queries through, the HTTP layer answers 503. Any other Redis error is a bug
# or a misconfiguration.
STORE_UNAVAILABLE = (
    RedisConnectionError, RedisTimeoutError, OutOfMemoryError, ReadOnlyError, BusyLoadingError,
)  # fmt: skip


def connect(url: str, timeout_s: float | None, name: str | None = None) -> "aioredis.Redis":
    """A client with bounded timeouts (``None`` for a pub/sub connection that waits)."""
    return aioredis.Redis.from_url(
        url,
        protocol=3,
        client_name=name,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s if timeout_s is not None else 5.0,
        retry_on_timeout=False,
    )
