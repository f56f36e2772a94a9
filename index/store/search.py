"""The RediSearch HNSW mirror of the vectors: its index (made idempotently, one per shard
on a cluster), the fallback KNN search while a replica's own index is not ready, and the
counts of live entries per namespace."""

import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from redis.exceptions import ResponseError

from index.store import keys
from index.store.records import Candidate, as_text
from index.store.shards import SearchIndex, Shards, escape_tag

log = logging.getLogger(__name__)


class SearchMirror:
    def __init__(self, shards: Shards, dim: int) -> None:
        self.shards = shards
        self.client = shards.client
        self.dim = dim

    async def indexes_partially(self) -> bool | None:
        """Whether the search module skips re-indexing a hash when no indexed field changed
        (``PARTIAL_INDEXED_DOCS``, a load-time argument; on a cluster, on every primary);
        None when it will not say. Off, every HIT's counters re-index the entry's vector:
        ~1 ms of Redis CPU each here."""
        cluster = await self.shards.topology()
        targets: list[Any] = [None] if cluster is None else cluster.get_primaries()
        answers = []
        for node in targets:
            options = {} if node is None else {"target_nodes": node}
            try:
                reply = await self.client.execute_command(  # type: ignore[no-untyped-call]
                    "FT.CONFIG", "GET", "PARTIAL_INDEXED_DOCS", **options
                )
            except ResponseError:
                return None
            value = dict(reply).get(b"PARTIAL_INDEXED_DOCS") if isinstance(reply, dict) else None
            if value is None:
                return None
            answers.append(as_text(value).lower() in ("true", "1", "yes"))
        return all(answers)

    async def ensure_search_index(self) -> None:
        """Create the search index (on a cluster: each primary's) unless it exists
        (idempotent; safe for replicas racing). An index made before its TAGs were
        case-sensitive (``Alpha`` matched ``alpha`` in the fallback search, and their counts
        were added up) is made again; the entries stay, and RediSearch indexes them again
        in the background."""
        for index in await self.shards.search_indexes():
            await self._ensure_search_index(index)

    async def _ensure_search_index(self, index: SearchIndex) -> None:
        if await self._index_tags_fold_case(index):
            log.warning("recreating %s: its namespace tags folded case", index[0])
            with contextlib.suppress(ResponseError):  # another replica dropped it first
                await self.shards.search(index, "FT.DROPINDEX")
        try:
            await self.shards.search(
                index,
                "FT.CREATE",
                "ON",
                "HASH",
                "PREFIX",
                "1",
                keys.ENTRY_PREFIX,
                "SCHEMA",
                "ns",
                "TAG",
                "CASESENSITIVE",
                "SORTABLE",
                "scope",
                "TAG",
                "CASESENSITIVE",
                "seq",
                "NUMERIC",
                "SORTABLE",
                "vector",
                "VECTOR",
                "HNSW",
                "10",
                "TYPE",
                "FLOAT32",
                "DIM",
                str(self.dim),
                "DISTANCE_METRIC",
                "L2",
                "M",
                "16",
                "EF_RUNTIME",
                "64",
            )
        except ResponseError as error:
            if "already exists" not in str(error).lower():
                raise

    async def _index_tags_fold_case(self, index: SearchIndex) -> bool:
        try:
            info = await self.shards.search(index, "FT.INFO")
        except ResponseError:  # no such index yet
            return False
        for attribute in info.get(b"attributes", []) if isinstance(info, dict) else []:
            if attribute.get(b"identifier") == b"ns":
                return b"CASESENSITIVE" not in attribute.get(b"flags", [])
        return False

    async def knn(self, ns: str, scope: str, vector: np.ndarray, k: int) -> list[Candidate]:
        """Nearest entries from the RediSearch HNSW mirror (the fallback search)."""
        query = (
            f"(@ns:{{{escape_tag(ns)}}} @scope:{{{escape_tag(scope)}}})"
            f"=>[KNN {k} @vector $vec AS dist]"
        )
        index = await self.shards.search_index_of(ns)
        try:
            reply = await self.shards.search(
                index,
                "FT.SEARCH",
                query,
                "PARAMS",
                "2",
                "vec",
                np.asarray(vector, dtype=np.float32).tobytes(),
                "SORTBY",
                "dist",
                "ASC",
                "RETURN",
                "1",
                "dist",
                "LIMIT",
                "0",
                str(k),
                "DIALECT",
                "2",
            )
        except ResponseError as error:
            if "no such index" not in str(error).lower():
                raise
            # gone under the replica (a FLUSHALL, an operator's FT.DROPINDEX): made again,
            # and RediSearch indexes the entries there in the background; nothing found yet
            log.warning("the search index %s is gone: making it again", index[0])
            await self._ensure_search_index(index)
            return []
        candidates = []
        for row in reply[b"results"]:
            parsed = keys.parse_entry_key(as_text(row[b"id"]))
            if parsed:
                distance = float(row[b"extra_attributes"][b"dist"])
                candidates.append(Candidate(parsed[1], distance))
        return candidates

    async def count_by_namespace(self) -> dict[str, int]:
        """Live entries per namespace, as the HNSW mirror counts them."""
        counts: Counter[str] = Counter()  # a namespace lives on one shard: no overlap
        for index in await self.shards.search_indexes():
            reply = await self.shards.search(
                index,
                "FT.AGGREGATE",
                "*",
                "GROUPBY",
                "1",
                "@ns",
                "REDUCE",
                "COUNT",
                "0",
                "AS",
                "n",
            )
            for row in reply[b"results"]:
                attrs = row[b"extra_attributes"]
                counts[as_text(attrs[b"ns"])] += int(attrs[b"n"])
        return dict(counts)

    async def count_in(self, namespaces: Sequence[str]) -> dict[str, int]:
        """Live entries of each of those namespaces, as the mirror counts them: a tag query
        per namespace (~0.13 µs per entry here, a quarter of what grouping every entry of
        the index costs, and no longer than one namespace's count holds Redis)."""
        counts = {}
        for ns in namespaces:
            reply = await self.shards.search(
                await self.shards.search_index_of(ns),
                "FT.SEARCH",
                f"@ns:{{{escape_tag(ns)}}}",
                "LIMIT",
                "0",
                "0",
            )
            counts[ns] = int(reply[b"total_results"] if isinstance(reply, dict) else reply[0])
        return counts
