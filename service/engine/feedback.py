"""``POST /v1/feedback``: callers say whether a HIT was right for the prompt it was served.

A *wrong* report narrows the entry: its feedback radius becomes the reported prompt's
distance to it (minus a hair, so the same prompt is refused despite float rounding), and
only queries strictly nearer than that are served the entry from then on — a per-entry
threshold learned from feedback. The radius lives in the entry's Redis hash, which every
replica reads when it confirms a candidate, so it applies everywhere at once. *Correct*
reports are kept as positives (counted on the entry, and with wrong ones in
``dc:fb:{ns}:<id>``, the last 100), and widen the entry's *verified radius*, the farthest
distance at which it was found right, which a wrong-rate bound learns from
(``service/policy/wrong_rate.py``). Reports are confined to the caller's namespace.
"""

import time

import numpy as np

from index.embedding.worker import EmbeddingWorker
from index.store import keys
from index.store.redis_store import RedisStore
from service.errors import NotFound
from service.keying.prompt_key import prompt_key
from service.keying.rag import RagSplitter
from service.policy.validation import validate_prompt
from service.schemas import FeedbackIn, FeedbackOut
from service.settings import Settings

ROUNDING_MARGIN = 1e-4  # squared L2: below any real paraphrase's distance


class FeedbackBook:
    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        embedder: EmbeddingWorker,
        splitter: RagSplitter,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.splitter = splitter

    async def record(
        self, ns: str, report: FeedbackIn, distance: float | None = None
    ) -> FeedbackOut:
        """Count a report on an entry; a wrong one narrows its radius to the report's
        distance, a right one widens its verified radius to it (``distance``: already known,
        as an audit knows it; else embedded)."""
        validate_prompt(report.prompt, self.settings.max_prompt_chars)
        question = prompt_key(self.splitter, report.prompt, None).question
        if distance is None:
            entry = await self.store.get(ns, report.entry_id) if keys.is_entry_id(
                report.entry_id
            ) else None  # fmt: skip
            if entry is None or entry.vector is None:
                raise NotFound("entry_not_found", "no entry with that id in this namespace")
            vector = await self.embedder.embed_one(question)
            distance = float(np.sum((vector - entry.vector) ** 2))
        exists, radius = await self.store.record_feedback(
            ns,
            report.entry_id,
            report.correct,
            max(0.0, distance - ROUNDING_MARGIN),
            {"prompt": question, "correct": report.correct, "distance": round(distance, 6),
             "at": round(time.time(), 3)},
            distance,
        )  # fmt: skip
        if not exists:
            raise NotFound("entry_not_found", "no entry with that id in this namespace")
        return FeedbackOut(
            entry_id=report.entry_id,
            correct=report.correct,
            distance=round(distance, 6),
            feedback_radius=radius,
        )
