"""What an entry learns about the queries it serves: clients' reports (``POST
/v1/feedback``) and the service's own checks (``service/engine/audits.py``).

A *wrong* report or check narrows the entry: its feedback radius becomes the query's
distance to it (minus a hair, so the same prompt is refused despite float rounding), and
only queries strictly nearer than that are served the entry from then on — a per-entry
threshold. The radius lives in the entry's Redis hash, which every replica reads when it
confirms a candidate, so it applies everywhere at once.

A *right* check (an audit, a withheld candidate against its MISS's answer) widens the
entry's *verified radius*, the farthest distance at which the service found it right, which
a wrong-rate bound learns from (``index/decision/wrong_rate.py``). A *right* report is a
client's word, not a check: it is counted as a report (``fb_right``) when its query lies
inside the search reach, and never widens what is served nor counts as the bound's
evidence: anyone who may query a namespace may report on its entries. Reports are kept in
``dc:fb:{ns}:<id>`` (the last 100) and confined to the caller's namespace.
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
