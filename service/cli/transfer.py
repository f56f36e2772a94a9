"""``dyna-cache export`` / ``import``: move a namespace between deployments as JSON lines.

Straight to and from Redis, so a namespace moves whole and a running cache keeps serving:
imports are written by the service's own write script and reach every replica by pub/sub.
Every line is checked first, under ``POST /v1/entries``' schema and limits, and refused with
its line number. An imported entry keeps its hit count, age and remaining lifetime; a prompt
already held is not written over; ``vector`` (``--vectors``) saves re-embedding when the
dimension matches. The line format is in docs/operating.md.
"""

import base64
import binascii
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import orjson
from pydantic import (
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from index.store.records import NewEntry, Retention
from index.store.redis_store import RedisStore
from service.cli.api_client import CliError
from service.cli.warm import check_utf8
from service.errors import InvalidInput
from service.keying.prompt_key import exact_form
from service.policy.validation import validate_entry, validate_json, validate_namespace
from service.schemas import MAX_TTL_S, EntryFields
from service.settings import Settings
from service.tenancy.tenants import DEFAULT_NAMESPACE

IMPORT_BATCH = 64
# how far ahead of this machine's clock an entry's creation time may be (the exporting
# machine's clock may run ahead); beyond it the entry would be served with a negative age
CLOCK_SKEW_S = 300
_INT64_MAX = 2**63 - 1  # what a Redis counter holds


async def export_namespace(store: RedisStore, ns: str, vectors: bool, out: IO[bytes]) -> int:
    """Write the namespace's live entries to ``out``; how many. ``ns`` is a name, never a
    pattern: ``*`` once exported every tenant's entries as one namespace."""
    try:
        validate_namespace(ns)
    except InvalidInput as error:
        raise CliError(f"namespace {ns!r}: {error.message}") from None
    written = 0
    async for page in store.insights.dump(ns, vectors):
        for entry in page:
            if vectors:
                raw = entry.pop("vector")
                entry["vector"] = base64.b64encode(raw).decode() if raw else None
            entry["completion"] = orjson.loads(entry["completion"]) if entry["completion"] else None
            out.write(orjson.dumps({"namespace": ns, **entry}) + b"\n")
            written += 1
    return written


async def export_all(store: RedisStore, vectors: bool, out: IO[bytes]) -> int:
    """Every namespace's live entries, each line labelled with its own namespace."""
    namespaces = sorted(await store.search.count_by_namespace())
    return sum([await export_namespace(store, ns, vectors, out) for ns in namespaces])


class ExportedEntry(EntryFields):
    """One line of an export: an entry's fields as ``POST /v1/entries`` takes them (the one
    schema: unknown fields are refused), and what the store kept with it. Numbers may come
    as text, as Redis keeps them; a field that is not what it must be names its line."""

    namespace: str | None = None
    scope: StrictStr
    completion: dict[str, Any] | None = None
    created: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    hits: int = Field(default=0, ge=0, le=_INT64_MAX)
    llm_ms: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    cost: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    policy: Literal["fixed", "sliding", "adaptive"] = "fixed"
    ttl_max: int = Field(default=0, ge=0, le=MAX_TTL_S)
    expires_in: float | None = Field(default=None, gt=0, le=MAX_TTL_S, allow_inf_nan=False)
    vector: bytes | None = None  # float32s (base64 in the file)
    personal: bool = False  # kept in per-user scope: its prompt stays hidden from others

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, row: Any) -> Any:
        """An empty or null field is an unset one (the prompt and the answer are text)."""
        if isinstance(row, dict):
            return {
                name: value
                for name, value in row.items()
                if value not in ("", None) or name in ("prompt", "response")
            }
        return row

    @field_validator("created")
    @classmethod
    def _not_in_the_future(cls, created: float | None) -> float | None:
        now = time.time()
        if created is not None and created > now + CLOCK_SKEW_S:
            raise ValueError(f"{created:.0f} is in the future (this machine's clock: {now:.0f})")
        return created

    @field_validator("vector", mode="before")
    @classmethod
    def _decoded(cls, encoded: Any) -> bytes:
        if not isinstance(encoded, str):
            raise ValueError("must be base64 text")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError("is not base64") from None
        if not raw or len(raw) % 4:
            raise ValueError(f"has {len(raw)} bytes: not whole float32 values (truncated?)")
        return raw


def read_export(source: Path, settings: Settings) -> Iterator[ExportedEntry]:
    """The export's entries, each checked as ``POST /v1/entries`` checks one under
    ``settings``' limits; the first bad line stops the run, named by its number."""
    check_utf8(source)
    with open(source, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield _checked(_parsed(line), settings)
            except InvalidInput as error:
                raise CliError(f"{source}:{number}: {error.message}") from None
            except ValidationError as error:
                problem = error.errors()[0]
                field = ".".join(str(part) for part in problem["loc"]) or "the entry"
                raise CliError(f"{source}:{number}: {field}: {problem['msg']}") from None


def _parsed(line: bytes) -> dict[str, Any]:
    """A line's JSON object (``InvalidInput`` saying what it is instead)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        at = f"column {error.colno}"
        rest = line.decode("utf-8")[error.pos :].lstrip("-")  # pos counts characters
        if "infinity" in error.msg:
            raise InvalidInput(
                "number_out_of_range",
                f"a number past the range of a double at {at} (1e400?): JSON numbers are finite",
            ) from None
        if rest.startswith(("NaN", "Infinity")):
            raise InvalidInput(
                "number_out_of_range", f"NaN or Infinity at {at}: not JSON (numbers are finite)"
            ) from None
        raise InvalidInput("invalid_json", f"not JSON: {error.msg} at {at}") from None
    if not isinstance(row, dict):
        raise InvalidInput("invalid_json", "not a JSON object")
    return row


def _checked(row: dict[str, Any], settings: Settings) -> ExportedEntry:
    entry = ExportedEntry.model_validate(row)
    validate_entry(entry, settings)
    if entry.completion is not None:
        validate_json(entry.completion, "completion")
    return entry


def _new_entry(row: ExportedEntry, ns: str, vector: np.ndarray) -> NewEntry:
    ttl = max(1, math.ceil(row.expires_in)) if row.expires_in else 0
    return NewEntry(
        ns=ns,
        scope=row.scope,
        model=row.model or "",
        prompt=row.prompt,
        normalised_prompt=exact_form(row.prompt),
        response=row.response,
        vector=vector,
        llm_ms=row.llm_ms,
        cost=row.cost,
        retention=Retention(ttl=ttl, ttl_policy=row.policy, ttl_max=row.ttl_max),
        completion=row.completion,
        created=row.created,
        hits=row.hits,
        personal=row.personal,
    )


def _vector_of(row: ExportedEntry, dim: int) -> np.ndarray | None:
    """The exported vector, when it fits the target (else it is embedded again)."""
    if row.vector is None:
        return None
    vector = np.frombuffer(row.vector, dtype=np.float32)
    return vector if vector.shape == (dim,) else None


@dataclass
class Imported:
    written: int = 0
    embedded: int = 0  # of them, embedded again (no usable vector)
    kept: int = 0  # not written: the target already had a live entry for the same prompt


async def import_entries(
    store: RedisStore,
    rows: Iterator[ExportedEntry],
    embed: Callable[[list[str]], np.ndarray],
    namespace: str | None,
    on_batch: Callable[[int], None] | None = None,
) -> Imported:
    """Write the rows (into ``namespace``, else each row's own), with their hit counts. A
    row whose prompt (and scope) the target already holds is not written: the live entry
    and its counts stay as they are. ``embed`` is called only for rows without a usable
    vector."""
    done = Imported()
    batch: list[ExportedEntry] = []

    async def write(batch: list[ExportedEntry]) -> None:
        fresh: list[tuple[ExportedEntry, str]] = []
        for row in batch:
            ns = namespace or row.namespace or DEFAULT_NAMESPACE
            try:
                validate_namespace(ns)
            except InvalidInput as error:
                raise CliError(f"namespace {ns!r}: {error}") from None
            if await store.lookup_exact(ns, row.scope, exact_form(row.prompt)) is not None:
                done.kept += 1
            else:
                fresh.append((row, ns))
        vectors = [_vector_of(row, store.dim) for row, _ in fresh]
        missing = [i for i, vector in enumerate(vectors) if vector is None]
        if missing:
            embedded = embed([fresh[i][0].prompt for i in missing])
            for i, vector in zip(missing, embedded, strict=True):
                vectors[i] = vector
            done.embedded += len(missing)
        for (row, ns), vector in zip(fresh, vectors, strict=True):
            assert vector is not None
            await store.write(_new_entry(row, ns, vector))
            done.written += 1
        if on_batch is not None:
            on_batch(len(batch))

    for row in rows:
        batch.append(row)
        if len(batch) >= IMPORT_BATCH:
            await write(batch)
            batch = []
    if batch:
        await write(batch)
    return done
