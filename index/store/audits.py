"""Audited hits in Redis, so that every replica reads the same estimate: a namespace's
counts (``dc:audit:{ns}``: audits and wrong ones, in total and per distance band, and what
they cost), each entry's own (``au_right``/``au_wrong`` on its hash), and a claim per
(entry, query) that makes an audit idempotent."""

from typing import Any

from index.store import keys
from index.store.scripts import Scripts
from index.store.shards import Shards

CLAIM_TTL_S = 24 * 3600  # the same query on the same entry is audited at most once a day


class AuditLog:
    def __init__(self, shards: Shards, scripts: Scripts) -> None:
        self.client = shards.client
        self.scripts = scripts

    async def claim(self, ns: str, entry_id: str, normalised_prompt: str) -> bool:
        """Whether this audit is the first of its (entry, query): False, and it is skipped,
        when another replica (or an earlier HIT) audited the same pair."""
        key = keys.audit_claim_key(ns, entry_id, normalised_prompt)
        return bool(await self.client.set(key, 1, nx=True, ex=CLAIM_TTL_S))

    async def record(self, ns: str, entry_id: str, band: str, right: bool, cost: float) -> None:
        """Count one audit: in the namespace's totals and band, and on the entry."""
        key = keys.audit_key(ns)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, "audits", 1)
            pipe.hincrby(key, f"audits:{band}", 1)
            if not right:
                pipe.hincrby(key, "wrong", 1)
                pipe.hincrby(key, f"wrong:{band}", 1)
            pipe.hincrbyfloat(key, "cost_usd", cost)
            await pipe.execute()
        await self.scripts.audit_entry(
            keys=[keys.entry_key(ns, entry_id)], args=["au_right" if right else "au_wrong"]
        )

    async def counts(self, namespaces: list[str]) -> dict[str, dict[str, Any]]:
        """Each namespace's audit counts (empty when it has none)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                pipe.hgetall(keys.audit_key(ns))
            rows = await pipe.execute()
        return {
            ns: {name.decode(): float(value) for name, value in row.items()}
            for ns, row in zip(namespaces, rows, strict=True)
        }
