"""Per-key rate limit: a token bucket in Redis, so the limit holds across replicas.

The bucket refills at ``rate`` tokens per second up to ``burst``; a request takes one
token or is refused with the seconds until one is there (for ``Retry-After``).
"""

import time

import redis.asyncio as aioredis

from index.store import keys
from index.store.scripts import Scripts


class RateLimiter:
    def __init__(self, client: "aioredis.Redis") -> None:
        self._scripts = Scripts.register(client)

    async def take(self, ns: str, key_id: str, rate_per_s: float, burst: int) -> float:
        """0 when a request with this key (of this namespace) may go on, else the seconds
        to wait."""
        wait = await self._scripts.take_token(
            keys=[keys.rate_key(ns, key_id)], args=[rate_per_s, burst, time.time()]
        )
        return float(wait)
