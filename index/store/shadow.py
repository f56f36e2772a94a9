"""Shadow mode's counts in Redis (``dc:shadow:{ns}``), so that every replica reports the
same figures: requests, would-be exact and semantic HITs and misses, what they would have
saved, and the would-be semantic HITs' answer comparisons, in total, per distance band and
per decision stage (``service/engine/shadow.py`` names the fields)."""

from collections.abc import Mapping

from index.store import keys
from index.store.audits import counts_of
from index.store.shards import Shards


class ShadowLog:
    def __init__(self, shards: Shards) -> None:
        self.client = shards.client

    async def add(self, ns: str, counts: Mapping[str, float]) -> None:
        """Add ``counts`` to the namespace's (one round trip)."""
        key = keys.shadow_key(ns)
        async with self.client.pipeline(transaction=False) as pipe:
            for name, value in counts.items():
                pipe.hincrbyfloat(key, name, value)
            await pipe.execute()

    async def counts(self, namespaces: list[str]) -> dict[str, dict[str, float]]:
        """Each namespace's shadow counts (empty when it never ran in shadow mode)."""
        return await counts_of(self.client, namespaces, keys.shadow_key)
