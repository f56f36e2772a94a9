"""Per-key rate limit: a token bucket in Redis, so the limit holds across replicas.

The bucket refills at ``rate`` tokens per second up to ``burst``; a request takes one
token or is refused with the seconds until one is there (for ``Retry-After``).
"""

import time

from index.store.rate_limits import RateBuckets


class RateLimiter:
    def __init__(self, buckets: RateBuckets) -> None:
        self.buckets = buckets

    async def take(self, ns: str, key_id: str, rate_per_s: float, burst: int) -> float:
        """0 when a request with this key (of this namespace) may go on, else the seconds
        to wait."""
        return await self.buckets.take(ns, key_id, rate_per_s, burst, time.time())
