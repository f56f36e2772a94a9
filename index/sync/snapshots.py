"""A replica's index snapshot on disk, for a restart in seconds (``index/vectors/snapshot.py``
holds the format): restored at start when it matches this deployment, embedder and
dimension and is not ahead of Redis; written periodically and at a clean stop, unless
nothing changed since the last one."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from index.vectors import snapshot
from index.vectors.local_index import LocalIndex
from index.vectors.snapshot import SnapshotIdentity

log = logging.getLogger(__name__)


class SnapshotKeeper:
    def __init__(
        self,
        folder: Path | None,
        embedder_id: str,
        deployment_id: Callable[[], Awaitable[str]],
        interval_s: float = 300.0,
    ) -> None:
        self.folder = folder  # None: no snapshots
        self.interval_s = interval_s
        self._embedder_id = embedder_id
        self._deployment_id = deployment_id
        self._identity: SnapshotIdentity | None = None
        self._mark: tuple[int, int, int] | None = None  # (seqs, entries, rebuilds) written
        self.status: dict[str, Any] = {"restored": None, "written": None}

    async def _identity_of(self, index: LocalIndex) -> SnapshotIdentity:
        if self._identity is None:
            self._identity = SnapshotIdentity(
                await self._deployment_id(), self._embedder_id, index.dim
            )
        return self._identity

    async def restore(self, index: LocalIndex, seqs: Mapping[str, int]) -> dict[str, int] | None:
        """Load the snapshot into ``index`` when there is a usable one; the seq of each
        namespace it holds (None: nothing restored)."""
        if self.folder is None:
            return None
        started = time.perf_counter()
        identity = await self._identity_of(index)
        loaded = await asyncio.to_thread(snapshot.load, self.folder, identity, index.shape)
        if loaded is None:
            return None
        behind = {ns for ns, seq in loaded.seqs.items() if seq > seqs.get(ns, 0)}
        if behind:  # Redis is older than the snapshot (restored from a backup): not ours
            log.warning(
                "index snapshot ignored: it is ahead of Redis in %d namespace(s), e.g. %s",
                len(behind),
                sorted(behind)[0],
            )
            return None
        index.replace_with(loaded.index)
        elapsed = time.perf_counter() - started
        self.status["restored"] = {
            "entries": loaded.entries,
            "seconds": round(elapsed, 3),
            "age_s": round(time.time() - loaded.created, 1),
        }
        log.info(
            "index snapshot loaded: %d entries in %.2f s, %.0f s old; catching up",
            loaded.entries,
            elapsed,
            time.time() - loaded.created,
        )
        return dict(loaded.seqs)

    async def write(
        self, index: LocalIndex, seqs: Mapping[str, int], mark: tuple[int, int, int]
    ) -> None:
        """Write ``index`` (frozen meanwhile: searches go on, changes wait) with the seqs it
        holds, unless ``mark`` (seqs, entries, rebuilds) is what was written last."""
        if self.folder is None or mark == self._mark:
            return
        identity = await self._identity_of(index)
        started = time.perf_counter()
        index.freeze()
        try:
            entries = await asyncio.to_thread(
                snapshot.save, index, dict(seqs), identity, self.folder
            )
        finally:
            index.thaw()
        self._mark = mark
        elapsed = time.perf_counter() - started
        self.status["written"] = {
            "entries": entries,
            "seconds": round(elapsed, 3),
            "at": time.time(),
        }
        log.info("index snapshot written: %d entries in %.2f s", entries, elapsed)
