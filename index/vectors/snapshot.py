"""A replica's local index on disk, so that a restart is ready in seconds, not minutes.

A folder: one FAISS file per (namespace, scope), its entries' ids, seqs and exact-key hashes
(``.npz``), and ``manifest.json`` (each namespace's seq, the deployment and embedder, a CRC-32
per file), written beside and renamed into place. Loaded only when whole and this
deployment's and embedder's, else ignored with a log line; the replica then catches up by
seq (``replica_sync.py``). Written from a worker thread while the index is frozen.
"""

import logging
import os
import secrets
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

from index.vectors.local_index import IndexPart, LocalIndex
from index.vectors.sub_index import IndexShape

log = logging.getLogger(__name__)

FORMAT = 2  # 2: entries as int64 arrays (id, seq, exact-key hash), no longer JSON
MANIFEST = "manifest.json"
CURRENT = "current"  # the folder of the snapshot in force, inside the snapshot folder
_CHUNK = 1 << 22


@dataclass(frozen=True)
class SnapshotIdentity:
    """What a snapshot must match to be used: the Redis deployment whose entries it holds
    (an id kept in Redis itself) and the embedder its vectors came from."""

    deployment: str
    embedder: str
    dim: int


@dataclass(frozen=True)
class Snapshot:
    index: LocalIndex
    seqs: dict[str, int]  # per namespace, every change up to this seq is in
    created: float
    entries: int


def _crc32(path: Path) -> int:
    checksum = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            checksum = zlib.crc32(chunk, checksum)
    return checksum


def _write_synced(path: Path, payload: bytes) -> None:
    with path.open("wb") as stream:
        stream.write(payload)
        stream.flush()
        os.fsync(stream.fileno())


def save(index: LocalIndex, seqs: dict[str, int], identity: SnapshotIdentity, folder: Path) -> int:
    """Write ``index`` (frozen by the caller) as the snapshot in force; entries written."""
    folder.mkdir(parents=True, exist_ok=True)
    writing = folder / f".writing-{os.getpid()}-{secrets.token_hex(4)}"
    shutil.rmtree(writing, ignore_errors=True)
    writing.mkdir()
    files: dict[str, int] = {}
    parts_meta: list[dict[str, Any]] = []
    entries = 0
    for number, part in enumerate(index.parts()):
        vectors_file, meta_file = f"{number}.faiss", f"{number}.npz"
        faiss.write_index(part.faiss, str(writing / vectors_file))
        with (writing / meta_file).open("wb") as stream:
            np.savez(
                stream,
                entries=np.stack([part.ids, part.seqs, part.exact_hashes], axis=1),
                tombstones=part.tombstones,
            )
            stream.flush()
            os.fsync(stream.fileno())
        for name in (vectors_file, meta_file):
            files[name] = _crc32(writing / name)
        parts_meta.append(
            {
                "ns": part.ns,
                "scope": part.scope,
                "is_hnsw": part.is_hnsw,
                "vectors": vectors_file,
                "meta": meta_file,
            }
        )
        entries += len(part.ids)
    removed, flushed_at = index.removals()
    manifest = {
        "format": FORMAT,
        "deployment": identity.deployment,
        "embedder": identity.embedder,
        "dim": identity.dim,
        "created": time.time(),
        "seqs": seqs,
        "entries": entries,
        "parts": parts_meta,
        "removed": removed,
        "flushed_at": flushed_at,
        "files": files,
    }
    _write_synced(writing / MANIFEST, orjson.dumps(manifest))
    current, retired = folder / CURRENT, folder / f".retired-{os.getpid()}-{secrets.token_hex(4)}"
    if current.exists():
        current.rename(retired)
    writing.rename(current)
    shutil.rmtree(retired, ignore_errors=True)
    return entries


class SnapshotRefused(Exception):
    """Why a snapshot on disk is not used."""


def load(folder: Path, identity: SnapshotIdentity, shape: IndexShape) -> Snapshot | None:
    """The snapshot in force, if whole and made for ``identity``; else None, logged."""
    current = folder / CURRENT
    if not (current / MANIFEST).exists():
        return None
    try:
        return _load(current, identity, shape)
    except (SnapshotRefused, OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        log.warning("index snapshot at %s ignored (not served): %s", current, error)
        return None


def _load(current: Path, identity: SnapshotIdentity, shape: IndexShape) -> Snapshot:
    manifest = orjson.loads((current / MANIFEST).read_bytes())
    if manifest.get("format") != FORMAT:
        raise SnapshotRefused(f"format {manifest.get('format')}, this release reads {FORMAT}")
    for field in ("deployment", "embedder", "dim"):
        if manifest.get(field) != getattr(identity, field):
            raise SnapshotRefused(
                f"made for {field} {manifest.get(field)!r}, this replica has "
                f"{getattr(identity, field)!r}"
            )
    for name, checksum in manifest["files"].items():
        if _crc32(current / name) != checksum:
            raise SnapshotRefused(f"{name} does not match its checksum (torn or corrupt)")
    parts = []
    for described in manifest["parts"]:
        with np.load(current / described["meta"], allow_pickle=False) as meta:
            entries, tombstones = meta["entries"], meta["tombstones"]
        vectors = faiss.read_index(str(current / described["vectors"]))
        if vectors.d != identity.dim:
            raise SnapshotRefused(f"{described['vectors']} holds {vectors.d}-d vectors")
        if entries.dtype != np.int64 or entries.ndim != 2 or entries.shape[1] != 3:
            raise SnapshotRefused(f"{described['meta']} holds {entries.dtype} {entries.shape}")
        parts.append(
            IndexPart(
                described["ns"],
                described["scope"],
                vectors,
                bool(described["is_hnsw"]),
                tombstones.astype(np.int64),
                entries[:, 0].copy(),
                entries[:, 1].copy(),
                entries[:, 2].copy(),
            )
        )
    index = LocalIndex.restored(
        identity.dim,
        shape,
        parts,
        [tuple(pair) for pair in manifest["removed"]],
        manifest["flushed_at"],
    )
    seqs = {str(ns): int(seq) for ns, seq in manifest["seqs"].items()}
    return Snapshot(index, seqs, float(manifest["created"]), int(manifest["entries"]))
