"""Managing entries directly: bulk warm-up, delete by id, flush a namespace."""

import asyncio
import time

import numpy as np

from index.embedding.worker import EmbeddingWorker
from index.lookup import VectorSide
from index.store.records import NewEntry, StoredEntry
from service.errors import Conflict, InvalidInput, NotFound, PartlyStored
from service.keying.prompt_key import PromptKey, prompt_key
from service.keying.rag import RagSplitter
from service.policy.validation import validate_context, validate_entry
from service.schemas import EntryIn, StoredEntryOut, TenantSettings
from service.settings import Settings
from service.tenancy.tenants import retention_for

_WRITES_IN_FLIGHT = 32


class EntryManager:
    def __init__(
        self,
        settings: Settings,
        vectors: VectorSide,
        embedder: EmbeddingWorker,
        splitter: RagSplitter,
    ) -> None:
        self.settings = settings
        self.splitter = splitter
        self.vectors = vectors
        self.embedder = embedder

    async def store_many(
        self,
        entries: list[EntryIn],
        ns: str,
        tenant: TenantSettings | None = None,
        *,
        overwrite: bool,
    ) -> list[StoredEntryOut]:
        """Validate all, embed all in one batch, then write each (nothing stored on bad
        input). Without ``overwrite``, an entry that would replace the answer the namespace
        holds for its prompt refuses the batch (``Conflict``, nothing stored)."""
        if len(entries) > self.settings.max_bulk_entries:
            raise InvalidInput(
                "too_many_entries",
                f"{len(entries)} entries in one request; the limit is "
                f"{self.settings.max_bulk_entries}",
            )
        for position, entry in enumerate(entries):
            validate_entry(entry, self.settings, f"entries[{position}].")
            validate_context(entry.context, self.settings.max_prompt_chars)
        prompt_keys = [prompt_key(self.splitter, e.prompt, e.model, [e.context]) for e in entries]
        # one write per exact key: the last of a batch's copies wins, as one after another
        # would (two concurrent writes of one key would only race each other)
        last_of = {(key.scope, key.normalised): i for i, key in enumerate(prompt_keys)}
        writes = sorted(set(last_of.values()))
        if not overwrite:
            await self._refuse_overwrites(ns, entries, prompt_keys, writes)
        vectors = await self.embedder.embed([prompt_keys[i].question for i in writes])
        limiter = asyncio.Semaphore(_WRITES_IN_FLIGHT)

        async def write(position: int, vector: np.ndarray) -> str:
            entry, key = entries[position], prompt_keys[position]
            async with limiter:
                return await self.vectors.keep(
                    NewEntry(
                        ns=ns,
                        scope=key.scope,
                        model=entry.model or "",
                        prompt=key.question,
                        normalised_prompt=key.normalised,
                        response=entry.response,
                        vector=vector,
                        llm_ms=0.0,
                        cost=self.settings.price_per_call_usd,
                        retention=retention_for(self.settings, tenant, entry.ttl),
                    )
                )

        outcomes = await asyncio.gather(
            *(write(position, vectors[n]) for n, position in enumerate(writes)),
            return_exceptions=True,
        )
        written_as = dict(zip(writes, outcomes, strict=True))
        entry_ids = [written_as[last_of[(key.scope, key.normalised)]] for key in prompt_keys]
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            if not isinstance(failures[0], Exception):
                raise failures[0]  # cancelled: not a store failure
            stored = [
                (i, entry_id) for i, entry_id in enumerate(entry_ids) if isinstance(entry_id, str)
            ]
            if not stored:
                raise failures[0]  # nothing stored: the failure itself (Redis unavailable...)
            failed = [i for i, entry_id in enumerate(entry_ids) if not isinstance(entry_id, str)]
            raise PartlyStored(type(failures[0]).__name__, stored, failed)
        return [
            StoredEntryOut(entry_id=str(entry_id), prompt=entry.prompt)
            for entry, entry_id in zip(entries, entry_ids, strict=True)
        ]

    async def _refuse_overwrites(
        self, ns: str, entries: list[EntryIn], prompt_keys: list[PromptKey], writes: list[int]
    ) -> None:
        """``Conflict`` naming the entry when one of the writes would replace the answer of
        a live entry (sending the same answer again changes nothing, and is let through).
        Checked before any write; a write of the same prompt landing in between is not
        seen (the last write of a prompt wins, as ever)."""
        limiter = asyncio.Semaphore(_WRITES_IN_FLIGHT)

        async def held(position: int) -> StoredEntry | None:
            key = prompt_keys[position]
            async with limiter:
                return await self.vectors.exact(ns, key.scope, key.normalised)

        found = await asyncio.gather(*(held(position) for position in writes))
        for position, existing in zip(writes, found, strict=True):
            if existing is not None and existing.response != entries[position].response:
                raise Conflict(
                    "entry_exists",
                    f"entries[{position}] would replace the answer of entry "
                    f'{existing.entry_id}; send "overwrite": true to replace it',
                )

    async def delete(self, ns: str, entry_id: str) -> None:
        """Delete one entry of the namespace; 404 when it has none with that id."""
        if not await self.vectors.delete(ns, entry_id):
            raise NotFound("entry_not_found", "no entry with that id in this namespace")

    async def delete_older_than(self, ns: str, seconds: int) -> int:
        """Delete the namespace's entries stored more than ``seconds`` ago; how many."""
        return await self.vectors.delete_older_than(ns, time.time() - seconds)

    async def flush(self, ns: str) -> int:
        return await self.vectors.flush(ns)
