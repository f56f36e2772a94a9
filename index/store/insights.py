"""What an operator reads about a namespace: its most-served entries, the recent near
misses, the prompts of given entries, and a dump of its live entries (the CLI's export)."""

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from index.store import keys
from index.store.records import EXPORT_FIELDS, as_text, named
from index.store.shards import Shards


class StoreInsights:
    def __init__(self, shards: Shards) -> None:
        self.shards = shards
        self.client = shards.client

    async def most_served(self, ns: str, count: int) -> list[tuple[str, str, int, bool]]:
        """``(entry id, prompt, hits, personal)`` of the namespace's most-served live
        entries, most first (the LFU order: uses, the write counting as the first);
        ``personal``: kept for one end user."""
        ranked: list[Any] = await self.client.zrevrange(keys.frequency_key(ns), 0, 4 * count)
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id in ranked:
                pipe.hmget(keys.entry_key(ns, as_text(entry_id)), ["prompt", "hits", "personal"])
            rows = await pipe.execute()
        served = [
            (as_text(entry_id), as_text(prompt), int(hits or 0), bool(personal))
            for entry_id, (prompt, hits, personal) in zip(ranked, rows, strict=True)
            if prompt is not None and int(hits or 0) > 0
        ]
        return served[:count]

    async def near_misses(self, ns: str) -> list[dict[str, Any]]:
        """The recent misses whose nearest candidate was not served (newest first)."""
        rows: list[Any] = await self.client.lrange(keys.near_miss_key(ns), 0, -1)
        return [orjson.loads(row) for row in rows]

    async def prompts_of(self, ns: str, entry_ids: Sequence[str]) -> dict[str, str]:
        """The prompts of those entries that are still live."""
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.hget(keys.entry_key(ns, entry_id), "prompt")
            prompts = await pipe.execute()
        return {
            entry_id: as_text(prompt)
            for entry_id, prompt in zip(entry_ids, prompts, strict=True)
            if prompt is not None
        }

    async def dump(
        self, ns: str, vectors: bool, page_size: int = 500
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A namespace's live entries, a page at a time: ``EXPORT_FIELDS`` (and ``vector``)
        decoded, with ``expires_in`` (seconds left; None: never expires)."""
        fields = [*EXPORT_FIELDS, "vector"] if vectors else list(EXPORT_FIELDS)
        async for batch in self.shards.scan(keys.entry_pattern(ns), page_size):
            async with self.client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hmget(key, fields)
                    pipe.pttl(key)
                replies = await pipe.execute()
            page = []
            for values, pttl in zip(replies[::2], replies[1::2], strict=True):
                row = named(tuple(fields), values)
                if row["prompt"] is None:  # expired between the scan and the read
                    continue
                entry: dict[str, Any] = {
                    name: row[name] if name == "vector" else as_text(row[name]) for name in fields
                }
                entry["expires_in"] = int(pttl) / 1000 if int(pttl) > 0 else None
                page.append(entry)
            yield page
