"""What a lookup gives back: a ``Hit`` (a stored answer served) or a ``Miss``."""

from dataclasses import dataclass
from typing import Any

from index.decision.distance import similarity
from service.engine.resolution import Resolution


@dataclass(frozen=True)
class Hit:
    """A stored answer served: ``prompt`` is the stored question it answered."""

    response: str
    prompt: str
    entry_id: str
    distance: float  # squared L2 between the unit embeddings (0: the same question)
    similarity: float  # cosine, 1 - distance / 2
    confidence: float | None  # the trained judge's probability, when it decided
    namespace: str
    latency_ms: float
    # the stored assistant message (Chat Completions' shape: role, content, tool_calls, and
    # whatever the storing application kept in it); None for a bare stored response
    message: dict[str, Any] | None = None

    @property
    def exact(self) -> bool:
        """The same question (after normalisation), not a paraphrase."""
        return self.distance == 0


@dataclass(frozen=True)
class Miss:
    """Nothing close enough (and judged right) was stored. After ``answer``, ``response``
    is what ``call_llm`` gave and ``entry_id`` the entry it was stored as."""

    namespace: str
    latency_ms: float
    distance: float | None = None  # the nearest candidate's, when there was one
    confidence: float | None = None  # the judge's probability for a refused candidate
    refused_by: str | None = None  # what refused the nearest candidate (a rule, a stage)
    response: str | None = None
    entry_id: str | None = None

    @property
    def similarity(self) -> float | None:
        return similarity(self.distance) if self.distance is not None else None


def result_of(ns: str, resolution: Resolution) -> Hit | Miss:
    """The library's view of how the query path resolved a lookup."""
    entry, distance = resolution.entry, resolution.distance
    if resolution.status == "HIT" and entry is not None and distance is not None:
        return Hit(
            response=entry.response,
            prompt=entry.prompt,
            entry_id=entry.entry_id,
            distance=distance,
            similarity=similarity(distance),
            confidence=resolution.confidence,
            namespace=ns,
            latency_ms=resolution.latency_ms,
            message=entry.completion.get("message") if entry.completion else None,
        )
    reply = resolution.reply
    return Miss(
        namespace=ns,
        latency_ms=resolution.latency_ms,
        distance=distance,
        confidence=resolution.confidence,
        response=reply.text if reply else None,
        entry_id=resolution.entry_id,
        refused_by=resolution.refused_by,
    )
