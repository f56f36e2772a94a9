"""``dyna-cache export`` / ``import``: move a namespace between deployments as JSON lines.

Straight to and from Redis (the service's truth), so a namespace moves whole and a running
cache keeps serving: imported entries are written by the same script as the service's own
writes, so every replica picks them up through pub/sub. One line per entry:

    {"namespace", "prompt", "response", "scope", "model", "completion", "created", "hits",
     "llm_ms", "cost", "ttl", "policy", "ttl_max", "expires_in", "vector"?}

``vector`` (base64 float32, with ``--vectors``) saves re-embedding on import; without it,
or when its dimension differs from the target's, the prompt is embedded again there (the
same model gives the same vector). An imported entry keeps its age and remaining lifetime.
"""

import base64
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from index.store.records import NewEntry, Retention, as_text
from index.store.redis_store import RedisStore
from service.cli.api_client import CliError
from service.errors import InvalidInput
from service.keying.normalise import normalise_prompt
from service.policy.validation import validate_namespace
from service.tenancy.tenants import DEFAULT_NAMESPACE

IMPORT_BATCH = 64


async def export_namespace(store: RedisStore, ns: str, vectors: bool, out: IO[bytes]) -> int:
    """Write the namespace's live entries to ``out``; how many."""
    written = 0
    async for page in store.dump(ns, vectors):
        for entry in page:
            if vectors:
                raw = entry.pop("vector")
                entry["vector"] = base64.b64encode(raw).decode() if raw else None
            entry["completion"] = orjson.loads(entry["completion"]) if entry["completion"] else None
            out.write(orjson.dumps({"namespace": ns, **entry}) + b"\n")
            written += 1
    return written


def read_export(source: Path) -> Iterator[dict[str, Any]]:
    with open(source, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise CliError(f"{source}:{number}: not a JSON object") from None
            if not isinstance(row, dict) or not all(
                isinstance(row.get(name), str) for name in ("prompt", "response", "scope")
            ):
                raise CliError(f"{source}:{number}: not an exported entry "
                               "(needs prompt, response and scope)")  # fmt: skip
            yield row


def _new_entry(row: dict[str, Any], ns: str, vector: np.ndarray) -> NewEntry:
    expires_in = row.get("expires_in")
    ttl = max(1, math.ceil(float(expires_in))) if expires_in else 0
    prompt = str(row["prompt"])
    return NewEntry(
        ns=ns,
        scope=str(row["scope"]),
        model=as_text(row.get("model")),
        prompt=prompt,
        normalised_prompt=normalise_prompt(prompt),
        response=str(row["response"]),
        vector=vector,
        llm_ms=float(row.get("llm_ms") or 0),
        cost=float(row.get("cost") or 0),
        retention=Retention(
            ttl=ttl,
            ttl_policy=str(row.get("policy") or "fixed"),
            ttl_max=int(float(row.get("ttl_max") or 0)),
        ),
        completion=row.get("completion") or None,
        created=float(row["created"]) if row.get("created") else None,
    )


def _vector_of(row: dict[str, Any], dim: int) -> np.ndarray | None:
    encoded = row.get("vector")
    if not encoded:
        return None
    vector = np.frombuffer(base64.b64decode(encoded), dtype=np.float32)
    return vector if vector.shape == (dim,) else None


async def import_entries(
    store: RedisStore,
    rows: Iterator[dict[str, Any]],
    embed: Callable[[list[str]], np.ndarray],
    namespace: str | None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Write the rows (into ``namespace``, else each row's own); ``(imported, re-embedded)``.
    ``embed`` is called only for rows without a usable vector."""
    imported = embedded = 0
    batch: list[dict[str, Any]] = []

    async def write(batch: list[dict[str, Any]]) -> None:
        nonlocal imported, embedded
        vectors = [_vector_of(row, store.dim) for row in batch]
        missing = [i for i, vector in enumerate(vectors) if vector is None]
        if missing:
            fresh = embed([str(batch[i]["prompt"]) for i in missing])
            for i, vector in zip(missing, fresh, strict=True):
                vectors[i] = vector
            embedded += len(missing)
        for row, vector in zip(batch, vectors, strict=True):
            assert vector is not None
            ns = namespace or str(row.get("namespace") or DEFAULT_NAMESPACE)
            try:
                validate_namespace(ns)
            except InvalidInput as error:
                raise CliError(f"namespace {ns!r}: {error}") from None
            await store.write(_new_entry(row, ns, vector))
            imported += 1
        if on_batch is not None:
            on_batch(len(batch))

    for row in rows:
        batch.append(row)
        if len(batch) >= IMPORT_BATCH:
            await write(batch)
            batch = []
    if batch:
        await write(batch)
    return imported, embedded
