"""Token buckets in Redis (``dc:rl:{ns}:<id>``), so that a limit holds across replicas: one
script (``take_token.lua``) refills the bucket for the time passed and takes a token."""

from index.store import keys
from index.store.scripts import Scripts


class RateBuckets:
    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts

    async def take(self, ns: str, bucket: str, rate_per_s: float, burst: int, now: float) -> float:
        """Take a token from ``ns``'s ``bucket`` (refilled at ``rate_per_s`` up to ``burst``):
        0 when there was one, else the seconds until there is."""
        wait = await self.scripts.take_token(
            keys=[keys.rate_key(ns, bucket)], args=[rate_per_s, burst, now]
        )
        return float(wait)
