"""Audited hits in Redis, so that every replica reads the same estimate: a namespace's
counts (``dc:audit:{ns}``: audits and wrong ones, in total and per distance band, what
they cost, and the wrong-rate bound's evidence per group), each entry's own
(``au_right``/``au_wrong`` on its hash), and per (entry, query) the verdict its first audit
reached and how often it was counted (``dc:audited:{ns}:<sha>``, ``right|3``): one LLM
call per pair, its verdict counted again for each later HIT of the pair drawn for audit.

The bound's evidence counts repeats of a pair, as the traffic does, but repeats of one
pair are one observation, not many: each group also keeps the sum of its pairs' squared
counts (``evidence_sq:<group>``), from which ``index/decision/wrong_rate.py`` takes the
effective number of observations, (sum of counts)² / (sum of squared counts)."""

from collections.abc import Callable
from typing import Any, Literal

from index.store import keys
from index.store.scripts import Scripts
from index.store.shards import Shards

CLAIM_TTL_S = 24 * 3600  # a pair's verdict is reused for a day, then audited afresh
PENDING: Literal["pending"] = "pending"
Verdict = Literal["right", "wrong", "pending"] | None
# a pair's first audit: no verdict yet, counted 0 times
FIRST: tuple[Verdict, int] = (None, 0)


class AuditLog:
    def __init__(self, shards: Shards, scripts: Scripts) -> None:
        self.client = shards.client
        self.scripts = scripts

    async def claim(self, ns: str, entry_id: str, normalised_prompt: str) -> tuple[Verdict, int]:
        """The verdict an earlier audit of this (entry, query) reached (``right``/``wrong``;
        ``pending`` while one is under way) and how often it was counted, or ``FIRST``: this
        audit is the pair's first, and has claimed it."""
        key = keys.audit_claim_key(ns, entry_id, normalised_prompt)
        if await self.client.set(key, PENDING, nx=True, ex=CLAIM_TTL_S):
            return FIRST
        found = await self.client.get(key)
        text = found.decode() if isinstance(found, bytes) else found or ""
        verdict, _, times = text.partition("|")
        counted = int(times) if times.isdigit() else 1
        if verdict == "right":
            return "right", counted
        if verdict == "wrong":
            return "wrong", counted
        return PENDING, 0

    async def remember(self, ns: str, entry_id: str, normalised_prompt: str, right: bool) -> None:
        """Keep a pair's verdict, counted once, for a day: a later HIT of the same pair
        drawn for audit is counted again with it, without calling the LLM (so audits stay a
        random sample of HITs, repeats included, and a repeat costs nothing)."""
        key = keys.audit_claim_key(ns, entry_id, normalised_prompt)
        await self.client.set(key, _claim_value(right, 1), ex=CLAIM_TTL_S)

    async def counted_again(
        self, ns: str, entry_id: str, normalised_prompt: str, right: bool, times: int
    ) -> None:
        """A pair's verdict, now counted ``times``; its day is not extended (the pair is
        audited afresh a day after its first audit, however often it repeats)."""
        key = keys.audit_claim_key(ns, entry_id, normalised_prompt)
        await self.client.set(key, _claim_value(right, times), keepttl=True)

    async def forget(self, ns: str, entry_id: str, normalised_prompt: str) -> None:
        """Release a pair's claim when its audit reached no verdict (the LLM failed, or
        its judge answered neither yes nor no): a later HIT of the pair may audit it."""
        await self.client.delete(keys.audit_claim_key(ns, entry_id, normalised_prompt))

    async def record(
        self,
        ns: str,
        entry_id: str,
        band: str,
        group: str,
        right: bool,
        served: bool,
        calls: int,
        cost: float,
        counted_before: int = 0,
    ) -> None:
        """Count one comparison: in the bound's evidence ``group`` (a pair
        ``counted_before`` times already), on the entry, and, for a ``served`` HIT's audit,
        in the namespace's estimate (totals and ``band``); ``calls`` and ``cost``: what it
        asked of the LLM (none for a repeat or a withheld candidate)."""
        key = keys.audit_key(ns)
        async with self.client.pipeline(transaction=False) as pipe:
            _count_evidence(pipe, key, group, right, counted_before)
            if not served:  # a served HIT is counted offered as it is served (``offered``)
                pipe.hincrby(key, f"offered:{group}", 1)
            if served:
                pipe.hincrby(key, "audits", 1)
                pipe.hincrby(key, f"audits:{band}", 1)
            if served and not right:
                pipe.hincrby(key, "wrong", 1)
                pipe.hincrby(key, f"wrong:{band}", 1)
            if calls > 0:
                pipe.hincrby(key, "calls", calls)
                pipe.hincrbyfloat(key, "cost_usd", cost)
            await pipe.execute()
        await self.scripts.audit_entry(
            keys=[keys.entry_key(ns, entry_id)], args=["au_right" if right else "au_wrong"]
        )

    async def offered(self, ns: str, group: str) -> None:
        """Count a served semantic HIT in its evidence group's traffic (``offered:<group>``;
        a withheld candidate is counted with its comparison): the bound weighs each group
        by the candidates it is offered."""
        await self.client.hincrby(keys.audit_key(ns), f"offered:{group}", 1)

    async def mark_withheld(self, ns: str, entry_id: str, group: str, right: bool) -> None:
        """Keep on the entry a MISS stored what the candidate the bound withheld would have
        been (its group and verdict): its exact repeats count it again."""
        await self.scripts.mark_withheld(
            keys=[keys.entry_key(ns, entry_id)], args=[f"{group}|{1 if right else 0}"]
        )

    async def count_withheld_repeat(self, ns: str, entry_id: str, group: str, right: bool) -> None:
        """Count a withheld verdict again for an exact repeat of the entry its MISS made
        (the entry's ``wh_n`` counts the repeats; nothing when the entry is gone)."""
        repeats = int(
            await self.scripts.audit_entry(keys=[keys.entry_key(ns, entry_id)], args=["wh_n"])
        )
        if repeats == 0:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            _count_evidence(pipe, keys.audit_key(ns), group, right, counted_before=repeats)
            pipe.hincrby(keys.audit_key(ns), f"offered:{group}", 1)
            await pipe.execute()

    async def counts(self, namespaces: list[str]) -> dict[str, dict[str, float]]:
        """Each namespace's audit counts (empty when it has none)."""
        return await counts_of(self.client, namespaces, keys.audit_key)


async def counts_of(
    client: Any, namespaces: list[str], key_of: Callable[[str], str]
) -> dict[str, dict[str, float]]:
    """Each namespace's hash of counts (``key_of(ns)``), in one round trip (empty: none)."""
    async with client.pipeline(transaction=False) as pipe:
        for ns in namespaces:
            pipe.hgetall(key_of(ns))
        rows = await pipe.execute()
    return {
        ns: {name.decode(): float(value) for name, value in row.items()}
        for ns, row in zip(namespaces, rows, strict=True)
    }


def _claim_value(right: bool, times: int) -> str:
    return f"{'right' if right else 'wrong'}|{times}"


def _count_evidence(pipe: Any, key: str, group: str, right: bool, counted_before: int) -> None:
    """One more count of a pair counted ``counted_before`` times: its squared count grows by
    (n + 1)² - n²."""
    pipe.hincrby(key, f"evidence:{group}", 1)
    pipe.hincrby(key, f"evidence_sq:{group}", 2 * counted_before + 1)
    if not right:
        pipe.hincrby(key, f"evidence_wrong:{group}", 1)
