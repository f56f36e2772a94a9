"""One (namespace, scope) of the local index: its FAISS index, flat or HNSW.

A sub-index is exact (flat) while small and HNSW once it holds ``hnsw_min_entries`` (flat
search cost grows with size: ~3.5 ms at 20k, ~20 ms at 100k here; HNSW stays near 1 ms).
HNSW cannot delete, so a removal there is a tombstone that searches skip; once tombstones
pass ``compact_ratio`` of the live entries the sub-index is rebuilt from its live vectors.
"""

from dataclasses import dataclass

import faiss
import numpy as np

faiss.omp_set_num_threads(1)  # single queries: a second OpenMP thread only adds overhead

# How an HNSW sub-index stores its vectors: float32 (1,536 bytes each at 384 dimensions),
# or FAISS scalar quantisation: fp16 (768) or 8 bits per dimension (384, trained per
# sub-index on its own vectors). Flat sub-indexes stay float32 (they are the small ones).
CODECS = ("float", "fp16", "sq8")
_QUANTISERS = {"fp16": "QT_fp16", "sq8": "QT_8bit"}
_TRAINING_SAMPLE = 100_000


@dataclass(frozen=True)
class IndexShape:
    """When a sub-index becomes HNSW, and how that HNSW is built, stored and searched."""

    hnsw_min_entries: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 128
    compact_ratio: float = 0.2
    codec: str = "float"


def hnsw_index(dim: int, shape: IndexShape, vectors: np.ndarray) -> faiss.Index:
    """An empty HNSW index of ``shape`` (its quantiser trained on ``vectors``, if any)."""
    graph: faiss.Index
    if shape.codec == "float":
        graph = faiss.IndexHNSWFlat(dim, shape.hnsw_m)
    else:
        quantiser = getattr(faiss.ScalarQuantizer, _QUANTISERS[shape.codec])
        graph = faiss.IndexHNSWSQ(dim, quantiser, shape.hnsw_m)
        if len(vectors):
            step = max(1, len(vectors) // _TRAINING_SAMPLE)
            graph.train(np.ascontiguousarray(vectors[::step]))
    graph.hnsw.efConstruction = shape.hnsw_ef_construction
    graph.hnsw.efSearch = shape.hnsw_ef_search
    return graph


class SubIndex:
    """One (namespace, scope): flat, or HNSW with tombstones."""

    def __init__(self, dim: int, shape: IndexShape, maintain_inline: bool) -> None:
        self.dim = dim
        self.shape = shape
        self.maintain_inline = maintain_inline
        # IndexIDMap, not IndexIDMap2: no id -> position hash map (~45 MB per million)
        self.faiss: faiss.IndexIDMap = faiss.IndexIDMap(faiss.IndexFlatL2(dim))
        self.is_hnsw = False
        self.tombstones: set[int] = set()
        self.compactions = 0

    @property
    def live(self) -> int:
        return int(self.faiss.ntotal) - len(self.tombstones)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.tombstones:
            self.tombstones.difference_update(ids.tolist())
        self.faiss.add_with_ids(vectors, ids)
        if self.maintain_inline and self.too_big_for_flat:
            self._rebuild(hnsw=True)

    @property
    def too_big_for_flat(self) -> bool:
        return not self.is_hnsw and self.faiss.ntotal >= self.shape.hnsw_min_entries

    @property
    def too_many_tombstones(self) -> bool:
        return len(self.tombstones) > self.shape.compact_ratio * max(self.live, 1)

    def remove_many(self, fids: list[int]) -> None:
        if not self.is_hnsw:
            self.faiss.remove_ids(np.array(fids, dtype=np.int64))  # type: ignore[arg-type]
            return
        self.tombstones.update(fids)
        if self.maintain_inline and self.too_many_tombstones:
            self._rebuild(hnsw=self.live >= self.shape.hnsw_min_entries // 2)

    def search(self, row: np.ndarray, k: int) -> list[tuple[float, int]]:
        if self.faiss.ntotal == 0:
            return []
        # tombstones are at most compact_ratio of the index: a few extra results suffice
        wanted = min(int(self.faiss.ntotal), k + min(len(self.tombstones), 4 * k + 16))
        distances, ids = self.faiss.search(row, wanted)
        found = [
            (float(dist), int(fid))
            for dist, fid in zip(distances[0], ids[0], strict=True)
            if fid >= 0 and int(fid) not in self.tombstones
        ]
        return found[:k]

    def _rebuild(self, hnsw: bool) -> None:
        """Rebuild from the live vectors (to switch to HNSW, or to drop tombstones)."""
        all_ids = faiss.vector_to_array(self.faiss.id_map).astype(np.int64)
        live = ~np.isin(all_ids, np.fromiter(self.tombstones, np.int64, len(self.tombstones)))
        live_ids = all_ids[live]
        vectors = (
            self.faiss.index.reconstruct_n(0, len(all_ids))[live]
            if len(live_ids)
            else np.empty((0, self.dim), dtype=np.float32)
        )
        base = hnsw_index(self.dim, self.shape, vectors) if hnsw else faiss.IndexFlatL2(self.dim)
        rebuilt = faiss.IndexIDMap(base)
        if len(live_ids):
            rebuilt.add_with_ids(vectors, live_ids)
        self.faiss, self.is_hnsw, self.tombstones = rebuilt, hnsw, set()
        self.compactions += 1
