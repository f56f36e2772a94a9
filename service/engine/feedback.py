"""What an entry learns about the queries it serves: clients' reports (``POST /v1/feedback``)
and the service's own checks (``service/engine/audits.py``).

A *wrong* report or check narrows the entry's feedback radius to the query's distance (a
per-entry threshold, in its Redis hash, so every replica applies it at once). A *right*
check widens its *verified radius*, which the wrong-rate bound learns from. A *right* report
is a client's word: counted (``fb_right``) inside the search reach, never widening what is
served. Reports are kept in ``dc:fb:{ns}:<id>`` (the last 100), in the caller's namespace.
"""

import time

import numpy as np

from index.decision.distance import is_hit
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


def narrowed(distance: float) -> float:
    """The feedback radius that refuses a query at ``distance`` (and anything farther)."""
    return max(0.0, distance - ROUNDING_MARGIN)


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

    async def record(self, ns: str, report: FeedbackIn, reach: float) -> FeedbackOut:
        """A client's report on an entry: a wrong one narrows its radius to the report's
        distance; a right one is counted when that distance is inside ``reach`` (how far
        the namespace's lookups look at candidates), and widens nothing."""
        validate_prompt(report.prompt, self.settings.max_prompt_chars)
        question = prompt_key(self.splitter, report.prompt, None).question
        entry = (
            await self.store.get(ns, report.entry_id) if keys.is_entry_id(report.entry_id) else None
        )
        if entry is None or entry.vector is None:
            raise NotFound("entry_not_found", "no entry with that id in this namespace")
        vector = await self.embedder.embed_one(question)
        distance = float(np.sum((vector - entry.vector) ** 2))
        exists, radius = await self.store.record_feedback(
            ns,
            report.entry_id,
            report.correct,
            narrowed(distance),
            {
                "prompt": question,
                "correct": report.correct,
                "distance": round(distance, 6),
                "at": round(time.time(), 3),
            },
            counted=is_hit(distance, reach),
        )
        if not exists:
            raise NotFound("entry_not_found", "no entry with that id in this namespace")
        return FeedbackOut(
            entry_id=report.entry_id,
            correct=report.correct,
            distance=round(distance, 6),
            feedback_radius=radius,
        )

    async def learn(self, ns: str, entry_id: str, right: bool, distance: float) -> None:
        """The service's own check of an entry for a query at ``distance``: a wrong one
        narrows it as a wrong report does, a right one widens its verified radius to
        ``distance`` (nothing when the entry is gone)."""
        found = distance if right else narrowed(distance)
        await self.store.record_check(ns, entry_id, right, found)
