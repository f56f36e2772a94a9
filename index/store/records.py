"""What the store keeps and gives back: entries as written, as served, and their lifetimes.

An entry hash's fields are read by name (``SERVE_FIELDS``, ``INDEX_FIELDS``) and decoded
here, in one place, from the raw replies.
"""

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson


def as_text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Retention:
    """How long an entry lives and what makes room for it."""

    ttl: int  # seconds; 0: never expires
    ttl_policy: str = "fixed"  # fixed | sliding | adaptive: what a HIT does to its expiry
    ttl_max: int = 0  # adaptive: the longest lifetime a HIT can give it
    capacity: int = 0  # the namespace's max entries (0: no limit)
    eviction: str = "lru"  # lru | lfu: which entry makes room when it is full


@dataclass(frozen=True)
class NewEntry:
    ns: str
    scope: str
    model: str
    prompt: str
    normalised_prompt: str
    response: str
    vector: np.ndarray
    llm_ms: float
    cost: float
    retention: Retention
    # Chat Completions answer: model, message (tool calls included), finish_reason, usage
    completion: dict[str, Any] | None = None
    created: float | None = None  # None: now (an imported entry keeps its own)
    hits: int = 0  # an imported entry keeps its count
    personal: bool = False  # kept for one end user (per-user scope): its prompt is theirs

    def hash_fields(self, created: float) -> list[str | bytes | float | int]:
        """The entry hash's fields as the write script takes them: name, value, name, ..."""
        fields: dict[str, str | bytes | float | int] = {
            "prompt": self.prompt,
            "response": self.response,
            "scope": self.scope,
            "model": self.model,
            "vector": np.asarray(self.vector, dtype=np.float32).tobytes(),
            "created": created,
            "hits": self.hits,
            "last_hit": 0,
            "llm_ms": round(self.llm_ms, 3),
            "cost": self.cost,
            "ttl": self.retention.ttl,
            "policy": self.retention.ttl_policy,
            "ttl_max": self.retention.ttl_max,
            "completion": orjson.dumps(self.completion) if self.completion else "",
            **({"personal": 1} if self.personal else {}),
        }
        return [item for pair in fields.items() for item in pair]


@dataclass(frozen=True)
class StoredEntry:
    entry_id: str
    prompt: str
    response: str
    created: float
    llm_ms: float
    cost: float
    ttl: int
    hits: int
    seq: int
    expires_at: float | None = None  # None: never expires
    model: str = ""
    completion: dict[str, Any] | None = None  # None: stored as a bare response
    vector: np.ndarray | None = None
    # set by a wrong-hit report: only queries nearer than this may be served the entry
    feedback_radius: float | None = None
    exact_key: str = ""  # its exact-match pointer
    # the farthest distance at which a query was found right for it (an audit, a comparison
    # with a MISS's answer, a right report): 0 when none was
    verified_radius: float = 0.0
    # made by a MISS whose candidate the wrong-rate bound withheld: that candidate's
    # evidence group and whether it was right (each exact repeat counts it again)
    withheld_verdict: tuple[str, bool] | None = None

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.created)

    def admits(self, distance: float) -> bool:
        """Whether a query this far away may be served this entry (after feedback)."""
        return self.feedback_radius is None or distance < self.feedback_radius

    def vouches(self, distance: float) -> bool:
        """Whether a query this far away is no farther than one found right for it."""
        return 0.0 < distance <= self.verified_radius

    def total_tokens(self) -> int:
        """The tokens the LLM's answer spent (0 when its usage was not reported)."""
        usage = (self.completion or {}).get("usage") or {}
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        return total if isinstance(total, int) and total > 0 else 0

    def chat_completion(self) -> dict[str, Any]:
        """The answer in Chat Completions form (a bare response becomes its content)."""
        if self.completion is not None:
            return self.completion
        return {
            "model": self.model,
            "message": {"role": "assistant", "content": self.response},
            "finish_reason": "stop",
            "usage": None,
        }


# Fields read to serve a HIT.
SERVE_FIELDS = (
    "prompt",
    "response",
    "created",
    "llm_ms",
    "cost",
    "ttl",
    "hits",
    "seq",
    "model",
    "completion",
    "vector",
    "fb_radius",
    "xkey",
    "vf_radius",
    "wh",
)
# Fields an export carries (the vector only when asked for).
EXPORT_FIELDS = (
    "prompt",
    "response",
    "scope",
    "model",
    "completion",
    "created",
    "hits",
    "llm_ms",
    "cost",
    "ttl",
    "policy",
    "ttl_max",
    "personal",
)
# Fields read to load an entry into a local index.
INDEX_FIELDS = ("ns", "scope", "vector", "seq", "xkey")


def named(fields: tuple[str, ...], values: list[Any]) -> dict[str, Any]:
    """An HMGET reply as a dict keyed by the fields asked for."""
    return dict(zip(fields, values, strict=True))


def stored_entry(entry_id: str, values: list[Any], pttl: int) -> StoredEntry | None:
    """A StoredEntry from an HMGET of ``SERVE_FIELDS`` and the hash's PTTL; None when gone."""
    row = named(SERVE_FIELDS, values)
    if row["prompt"] is None or row["response"] is None:
        return None
    return StoredEntry(
        entry_id=entry_id,
        prompt=as_text(row["prompt"]),
        response=as_text(row["response"]),
        created=float(row["created"] or 0),
        llm_ms=float(row["llm_ms"] or 0),
        cost=float(row["cost"] or 0),
        ttl=int(row["ttl"] or 0),
        hits=int(row["hits"] or 0),
        seq=int(row["seq"] or 0),
        expires_at=time.time() + pttl / 1000 if pttl and int(pttl) > 0 else None,
        model=as_text(row["model"]),
        completion=orjson.loads(row["completion"]) if row["completion"] else None,
        vector=np.frombuffer(row["vector"], dtype=np.float32) if row["vector"] else None,
        feedback_radius=float(row["fb_radius"]) if row["fb_radius"] else None,
        exact_key=as_text(row["xkey"]),
        verified_radius=float(row["vf_radius"]) if row["vf_radius"] else 0.0,
        withheld_verdict=_withheld_verdict(row["wh"]),
    )


def _withheld_verdict(field: Any) -> tuple[str, bool] | None:
    """``wh`` (``'<group>|1'`` or ``'<group>|0'``) as (group, right); None when absent."""
    if not field:
        return None
    group, _, right = as_text(field).rpartition("|")
    return group, right == "1"


# What a search gives back, and what a replica holds of an entry (the local index and the
# store's sync reads both speak these).
@dataclass(frozen=True)
class Candidate:
    entry_id: str
    distance: float


@dataclass(frozen=True)
class IndexedVector:
    """What a replica holds of an entry: its vector, where it belongs, the write seq, and
    its exact-match key (so an exact repeat is found without asking Redis first)."""

    ns: str
    scope: str
    entry_id: str
    vector: np.ndarray
    seq: int
    exact_key: str = ""
